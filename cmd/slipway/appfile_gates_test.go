package main

import (
	"strings"
	"testing"

	"github.com/slipway/slipway/openapi"
)

// TestAppFileGates reads channels' gates from slipway.yaml strictly, sends them as the
// API takes them, and finds a server app with the same gates the same.
func TestAppFileGates(t *testing.T) {
	f, err := parseAppFile([]byte(`app: hello
channels:
  - name: dev
  - name: prod
    from: dev
    auto_promote: true
    gates:
      soak: 24h
      approvals: 1
      windows:
        - {kind: deny, cron: "0 12 * * 5", duration: 60h, time_zone: Europe/Berlin}
`))
	if err != nil {
		t.Fatal(err)
	}
	in := f.over(openapi.AppInput{})
	prod := (*in.Channels)[1]
	if prod.Gates == nil || deref(prod.Gates.Soak) != "24h" || prod.Gates.Approvals == nil || *prod.Gates.Approvals != 1 || prod.Gates.Windows == nil ||
		deref((*prod.Gates.Windows)[0].TimeZone) != "Europe/Berlin" || prod.AutoPromote == nil || !*prod.AutoPromote {
		t.Fatalf("prod as sent = %+v", prod)
	}
	app := &openapi.App{Name: "hello", Channels: *in.Channels, Platforms: []string{"linux/amd64"}}
	if d := f.differs(app); len(d) != 0 {
		t.Errorf("differs from an app with the same channels: %v", d)
	}
	app.Channels[1].Gates = &openapi.Gates{Soak: ptr("1h")}
	if d := f.differs(app); len(d) != 1 || d[0] != "channels" {
		t.Errorf("differs from an app with other gates = %v, want channels", d)
	}
	if _, err := parseAppFile([]byte("app: hello\nchannels:\n  - name: prod\n    gates: {soak: 1h, aprovals: 1}\n")); err == nil || !strings.Contains(err.Error(), "aprovals") {
		t.Errorf("a misspelt gate = %v, want an error naming it", err)
	}
}
