package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/slipway/slipway/invalid"
)

func TestGuard(t *testing.T) {
	tests := []struct {
		addr   string
		allow  []netip.Prefix
		reason string // "" when allowed
	}{
		{"127.0.0.1", nil, "loopback"},
		{"127.9.9.9", nil, "loopback"},
		{"::1", nil, "loopback"},
		{"::ffff:127.0.0.1", nil, "loopback"},
		{"169.254.169.254", nil, "link-local (cloud metadata)"},
		{"fe80::1", nil, "link-local (cloud metadata)"},
		{"fd00:ec2::254", nil, "private"},
		{"10.1.2.3", nil, "private"},
		{"172.16.0.1", nil, "private"},
		{"172.31.255.255", nil, "private"},
		{"192.168.1.1", nil, "private"},
		{"fc00::1", nil, "private"},
		{"100.64.0.1", nil, "carrier-grade NAT (shared)"},
		{"0.0.0.0", nil, "unspecified"},
		{"0.1.2.3", nil, "this-network"},
		{"224.0.0.1", nil, "multicast"},
		{"255.255.255.255", nil, "broadcast"},
		{"64:ff9b::7f00:1", nil, "NAT64"},
		{"93.184.216.34", nil, ""},
		{"172.32.0.1", nil, ""},
		{"2606:4700::1111", nil, ""},
		{"127.0.0.1", loopback, ""},
		{"169.254.169.254", loopback, "link-local (cloud metadata)"},
		{"10.0.0.5", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			err := guard{allow: tc.allow}.check(netip.MustParseAddr(tc.addr))
			var re *RefusedError
			switch {
			case tc.reason == "" && err != nil:
				t.Errorf("check(%s) = %v, want allowed", tc.addr, err)
			case tc.reason != "" && (!errors.As(err, &re) || re.Reason != tc.reason):
				t.Errorf("check(%s) = %v, want refused as %s", tc.addr, err, tc.reason)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	tests := []struct {
		url      string
		allow    []netip.Prefix
		refused  string // the address the error must name; "" when allowed
		validErr bool
	}{
		{"http://127.0.0.1:8080/hook", nil, "127.0.0.1", false},
		{"http://169.254.169.254/latest/meta-data/", nil, "169.254.169.254", false},
		{"http://169.254.169.254/latest/meta-data/", loopback, "169.254.169.254", false},
		{"http://[::1]/", nil, "::1", false},
		{"http://localhost:9/", nil, "", false}, // names 127.0.0.1 or ::1; checked below
		{"http://127.0.0.1:8080/hook", loopback, "", false},
		{"https://203.0.113.9/", nil, "203.0.113.9", false},
		{"::not a url", nil, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := guard{allow: tc.allow}.checkURL(context.Background(), tc.url)
			var re *RefusedError
			var ve *invalid.Error
			switch {
			case tc.validErr:
				if !errors.As(err, &ve) {
					t.Errorf("checkURL(%s) = %v, want a validation error", tc.url, err)
				}
			case tc.url == "http://localhost:9/":
				if !errors.As(err, &re) || !re.Addr.IsLoopback() || re.Host != "localhost" {
					t.Errorf("checkURL(%s) = %v, want localhost refused as loopback", tc.url, err)
				}
			case tc.refused == "" && err != nil:
				t.Errorf("checkURL(%s) = %v, want allowed", tc.url, err)
			case tc.refused != "" && (!errors.As(err, &re) || re.Addr.String() != tc.refused):
				t.Errorf("checkURL(%s) = %v, want refused naming %s", tc.url, err, tc.refused)
			}
		})
	}
}

// TestNewClient posts through the guarded client: loopback is refused at the dial unless
// allowed.
func TestNewClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer srv.Close()
	for _, tc := range []struct {
		name    string
		allow   []netip.Prefix
		refused bool
	}{
		{"loopback refused", nil, true},
		{"loopback allowed", loopback, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewClient(WithAllowNets(tc.allow))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.Post(srv.URL, "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
			}
			var re *RefusedError
			if got := errors.As(err, &re); got != tc.refused {
				t.Errorf("POST %s = %v, want refused %v", srv.URL, err, tc.refused)
			}
		})
	}
	if _, err := NewClient(WithTimeout(0)); err == nil {
		t.Error("NewClient(WithTimeout(0)) = nil error, want the option refused")
	}
}
