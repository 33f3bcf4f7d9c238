package builder

import (
	"errors"
	"slices"
	"testing"
)

func TestRenderLdflags(t *testing.T) {
	vars := LdflagsVars{Version: "1.2.3", Commit: "abc", Date: "2026-01-01T00:00:00Z", App: "hello"}
	for _, tc := range []struct {
		name, tmpl string
		want       []string
		ok         bool
	}{
		{"default", "-X main.version={{.Version}}", []string{"-X", "main.version=1.2.3"}, true},
		{"all fields", "-s -w -X main.version={{.Version}} -X=main.commit={{.Commit}} -X 'main.date={{.Date}}' -X \"main.app={{.App}}\"",
			[]string{"-s", "-w", "-X", "main.version=1.2.3", "-X=main.commit=abc", "-X", "main.date=2026-01-01T00:00:00Z", "-X", "main.app=hello"}, true},
		{"quoted spaces", "-X 'main.greeting=hello world'", []string{"-X", "main.greeting=hello world"}, true},
		{"empty", "", nil, true},
		{"unknown field", "-X main.v={{.Nope}}", nil, false},
		{"bad template", "-X main.v={{.Version", nil, false},
		{"extld", "-linkmode=external -extld=/bin/sh", nil, false},
		{"dangling -X", "-X", nil, false},
		{"define without dot", "-X version=1", nil, false},
		{"unterminated quote", "-X 'main.v=1", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RenderLdflags(tc.tmpl, vars)
			if (err == nil) != tc.ok {
				t.Fatalf("RenderLdflags(%q) = %v, want ok %v", tc.tmpl, err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrLdflags) {
				t.Errorf("RenderLdflags(%q) = %v, want ErrLdflags", tc.tmpl, err)
			}
			if err == nil && !slices.Equal(got, tc.want) {
				t.Errorf("RenderLdflags(%q) = %q, want %q", tc.tmpl, got, tc.want)
			}
		})
	}
}
