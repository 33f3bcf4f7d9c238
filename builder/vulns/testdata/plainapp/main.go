// Command plainapp holds no code of the fixture database's entries.
package main

import "fmt"

func main() { fmt.Println("hello") }
