// Command b32app encodes base32: it holds the code of the fixture database's medium entry.
package main

import (
	"encoding/base32"
	"fmt"
	"os"
)

func main() {
	fmt.Println(base32.StdEncoding.EncodeToString([]byte(os.Args[0])))
}
