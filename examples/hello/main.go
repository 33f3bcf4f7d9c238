// Command hello is the service the README's quick start builds with slipway: it answers
// every request with its version, which slipway sets when it links the binary
// (-X main.version={{.Version}} in slipway.yaml).
package main

import (
	"fmt"
	"log"
	"net/http"
	"os"
)

// version is set by the linker; a plain go build leaves it "dev".
var version = "dev"

func main() {
	addr := ":8080"
	if port := os.Getenv("PORT"); port != "" {
		addr = ":" + port
	}
	log.Printf("hello %s listening on %s", version, addr)
	log.Fatal(http.ListenAndServe(addr, handler()))
}

// handler answers every request with the version.
func handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s\n", version)
	})
}
