module example.com/b32app

go 1.26
