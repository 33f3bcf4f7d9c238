package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
)

// TestReleasesDocsExample reads the example configuration of docs/releases.md as
// slipway.yaml and as the API's JSON, and puts both through the server's own validation,
// so the page never shows a configuration slipway refuses; every slipway command it
// shows exists with the flags it gives.
func TestReleasesDocsExample(t *testing.T) {
	md, err := os.ReadFile(filepath.Join("..", "..", "docs", "releases.md"))
	if err != nil {
		t.Fatal(err)
	}
	var fromYAML, fromJSON []byte
	for _, b := range docBlocks(string(md)) {
		switch {
		case b.marker == "example: slipway.yaml":
			f, err := parseAppFile([]byte(b.text))
			if err != nil {
				t.Fatalf("the example slipway.yaml: %v", err)
			}
			in := f.over(openapi.AppInput{})
			fromYAML, _ = json.Marshal(in.Channels)
		case b.lang == "json" && strings.Contains(b.text, `"channels"`):
			dec := json.NewDecoder(strings.NewReader(b.text))
			dec.DisallowUnknownFields()
			var in openapi.AppInput
			if err := dec.Decode(&in); err != nil {
				t.Fatalf("the example JSON: %v", err)
			}
			fromJSON, _ = json.Marshal(in.Channels)
		}
	}
	if fromYAML == nil || fromJSON == nil {
		t.Fatal("docs/releases.md lacks the example slipway.yaml (<!-- example: slipway.yaml -->) or its JSON")
	}
	if !bytes.Equal(fromYAML, fromJSON) {
		t.Errorf("the example's YAML and JSON differ:\n%s\n%s", fromYAML, fromJSON)
	}
	dec := json.NewDecoder(bytes.NewReader(fromYAML))
	dec.DisallowUnknownFields()
	var chs []release.Channel
	if err := dec.Decode(&chs); err != nil {
		t.Fatalf("the example's channels as the server reads them: %v", err)
	}
	if _, err := (release.AppSpec{Channels: &chs}).Resolve(nil); err != nil {
		t.Fatalf("the server refuses the example: %v", err)
	}
	prod := chs[len(chs)-1]
	if g := prod.Gates; prod.Name != "prod" || g == nil || g.Soak != "24h" || g.Approvals != 1 || len(g.Windows) != 1 ||
		g.Windows[0].Kind != "deny" || g.Windows[0].TimeZone != "Europe/Berlin" {
		t.Errorf("the example's prod = %+v, want a 24h soak, one approval and a deny window in Europe/Berlin", prod)
	}
	for _, args := range slipwayCommands(string(md)) {
		if msg := checkCommand(args); msg != "" {
			t.Errorf("docs/releases.md: slipway %s: %s", strings.Join(args, " "), msg)
		}
	}
}
