package gocache

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
)

// RunProg is the cache program the go command starts (GOCACHEPROG, see Server.Command),
// as `slipway gocacheprog --socket PATH --namespace NS`: it connects to the worker's
// server, says which namespace the compile uses, and then relays the go command's cache
// protocol (its stdin and stdout) both ways, as it is, until either side ends. It holds
// no credential and touches no file: the server does all of that.
func RunProg(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("gocacheprog", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sock := fs.String("socket", "", "the worker's build cache socket")
	ns := fs.String("namespace", SharedNamespace, "the build cache namespace")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("gocacheprog: %w", err)
	}
	if *sock == "" || fs.NArg() > 0 {
		return errors.New("usage: slipway gocacheprog --socket PATH [--namespace NS] (run by the go command as GOCACHEPROG)")
	}
	if err := checkNamespace(*ns); err != nil {
		return err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", *sock)
	if err != nil {
		return fmt.Errorf("reaching the worker's build cache: %w", err)
	}
	uc := c.(*net.UnixConn)
	defer uc.Close()
	greeting, _ := json.Marshal(hello{Namespace: *ns})
	if _, err := uc.Write(append(greeting, '\n')); err != nil {
		return fmt.Errorf("reaching the worker's build cache: %w", err)
	}
	go func() {
		// The go command's requests; when it closes stdin, the server sees the end.
		_, _ = io.Copy(uc, stdin)
		_ = uc.CloseWrite()
	}()
	if _, err := io.Copy(stdout, uc); err != nil {
		return fmt.Errorf("relaying the build cache: %w", err)
	}
	return nil
}
