// Command csvapp reads CSV: it holds the code of the fixture database's critical entry.
package main

import (
	"encoding/csv"
	"fmt"
	"os"
)

func main() {
	recs, err := csv.NewReader(os.Stdin).ReadAll()
	fmt.Println(len(recs), err)
}
