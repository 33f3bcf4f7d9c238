package gobuild

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestParsePlatform(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		env      []string
		ok       bool
	}{
		{"linux/amd64", "linux/amd64", []string{"GOOS=linux", "GOARCH=amd64"}, true},
		{"linux/arm/v7", "linux/arm/v7", []string{"GOOS=linux", "GOARCH=arm", "GOARM=7"}, true},
		{"linux/arm64/v8", "linux/arm64", []string{"GOOS=linux", "GOARCH=arm64"}, true},
		{"linux/arm64/v8.2", "linux/arm64/v8.2", []string{"GOOS=linux", "GOARCH=arm64", "GOARM64=v8.2"}, true},
		{"linux/amd64/v3", "linux/amd64/v3", []string{"GOOS=linux", "GOARCH=amd64", "GOAMD64=v3"}, true},
		{"linux/amd64/v1", "linux/amd64", []string{"GOOS=linux", "GOARCH=amd64"}, true},
		{"linux", "", nil, false},
		{"linux/", "", nil, false},
		{"/amd64", "", nil, false},
		{"linux/arm/v9", "", nil, false},
		{"linux/s390x/v1", "", nil, false},
		{"linux/amd64/v3/x", "", nil, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			p, err := ParsePlatform(tc.in)
			if (err == nil) != tc.ok {
				t.Fatalf("ParsePlatform(%q) = %v, want ok %v", tc.in, err, tc.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrPlatform) {
					t.Errorf("ParsePlatform(%q) = %v, want ErrPlatform", tc.in, err)
				}
				return
			}
			if p.String() != tc.want || !slices.Equal(p.Env(), tc.env) {
				t.Errorf("ParsePlatform(%q) = %s %v, want %s %v", tc.in, p, p.Env(), tc.want, tc.env)
			}
		})
	}
}

func TestToolchainPlatforms(t *testing.T) {
	tc, err := LoadToolchain(context.Background(), "go")
	if err != nil {
		t.Fatal(err)
	}
	if tc.Version() == "" {
		t.Error("Version() is empty")
	}
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"linux/amd64", true}, {"linux/arm64", true}, {"windows/amd64", true}, {"js/wasm", true},
		{"android/arm64", true}, {"android/amd64", false}, {"ios/arm64", false}, {"linux/z80", false}, {"plan10/amd64", false},
	} {
		if _, err := tc.CheckPlatform(tt.in); (err == nil) != tt.ok {
			t.Errorf("CheckPlatform(%q) = %v, want ok %v", tt.in, err, tt.ok)
		}
	}
}
