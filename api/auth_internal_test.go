package api

import (
	"errors"
	"slices"
	"testing"
)

// TestMayCreate: a token makes only tokens within its own scopes and apps. Only admin
// tokens reach POST /v1/tokens today, so the scope rules are tested here, for the day
// another scope may make tokens.
func TestMayCreate(t *testing.T) {
	for _, tc := range []struct {
		name         string
		scopes, apps []string // the caller's
		wantScopes   []string
		wantApps     []string
		refused      []string // the fields refused
	}{
		{"admin makes anything", []string{"admin"}, nil, []string{"admin", "promote", "build"}, nil, nil},
		{"read makes read", []string{"read"}, nil, []string{"read"}, nil, nil},
		{"every scope holds read", []string{"build"}, nil, []string{"read", "build"}, nil, nil},
		{"build does not make release", []string{"build"}, nil, []string{"release"}, nil, []string{"scopes[0]"}},
		{"read does not make admin", []string{"read"}, nil, []string{"read", "admin"}, nil, []string{"scopes[1]"}},
		{"promote makes promote:<channel>", []string{"promote"}, nil, []string{"promote:prod"}, nil, nil},
		{"promote:<channel> makes itself", []string{"promote:staging"}, nil, []string{"promote:staging"}, nil, nil},
		{"promote:<channel> does not make promote", []string{"promote:staging"}, nil, []string{"promote"}, nil, []string{"scopes[0]"}},
		{"promote:<channel> does not make another channel", []string{"promote:staging"}, nil, []string{"promote:prod"}, nil, []string{"scopes[0]"}},
		{"unlimited makes limited", []string{"admin"}, nil, []string{"read"}, []string{"a"}, nil},
		{"limited makes a subset", []string{"admin"}, []string{"a", "b"}, []string{"read"}, []string{"b"}, nil},
		{"limited makes its apps", []string{"admin"}, []string{"a", "b"}, []string{"read"}, []string{"b", "a"}, nil},
		{"limited does not make unlimited", []string{"admin"}, []string{"a"}, []string{"read"}, nil, []string{"apps"}},
		{"limited does not make another app", []string{"admin"}, []string{"a"}, []string{"read"}, []string{"a", "c"}, []string{"apps[1]"}},
		{"both refused", []string{"build"}, []string{"a"}, []string{"admin"}, []string{"c"}, []string{"scopes[0]", "apps[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &principal{id: "tok_x", name: "caller", scopes: tc.scopes, apps: tc.apps}
			err := p.mayCreate(tc.wantScopes, tc.wantApps)
			var refused []string
			var prob *problemError
			if errors.As(err, &prob) {
				for _, f := range prob.fields {
					refused = append(refused, f.Field)
				}
			} else if err != nil {
				t.Fatalf("mayCreate = %v, want a problem", err)
			}
			if !slices.Equal(refused, tc.refused) {
				t.Errorf("mayCreate(%v, %v) by %v %v refused %v, want %v", tc.wantScopes, tc.wantApps, tc.scopes, tc.apps, refused, tc.refused)
			}
		})
	}
	if err := (*principal)(nil).mayCreate([]string{"admin"}, nil); err != nil {
		t.Errorf("mayCreate without authentication = %v, want nil", err)
	}
}
