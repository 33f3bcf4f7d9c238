module example.com/csvapp

go 1.26
