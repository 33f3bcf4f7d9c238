package gocache

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// TestMain makes the test binary the cache program too: the go command of the tests'
// builds runs it as `<test binary> gocacheprog --socket ... --namespace ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "gocacheprog" {
		if err := RunProg(context.Background(), os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "gocacheprog:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
