package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/store/storetest"
)

var nextLink = regexp.MustCompile(`^<(/v2/_catalog\?[^>]*)>; rel="next"$`)

// catalogPages follows /v2/_catalog?n=<n> from its first page to its last, failing the
// test unless every page but the last holds n names and each Link's last is the last
// name of its page.
func (e *env) catalogPages(header map[string]string, n string) []string {
	e.t.Helper()
	var all []string
	path := "/v2/_catalog?n=" + n
	for range 20 {
		r := e.do("GET", path, header, "")
		if r.status != http.StatusOK {
			e.t.Fatalf("GET %s = %d %s", path, r.status, r.body)
		}
		var page struct{ Repositories []string }
		if err := json.Unmarshal(r.body, &page); err != nil {
			e.t.Fatal(err)
		}
		all = append(all, page.Repositories...)
		link := r.header.Get("Link")
		if link == "" {
			return all
		}
		m := nextLink.FindStringSubmatch(link)
		if m == nil {
			e.t.Fatalf("GET %s: Link %q, want </v2/_catalog?...>; rel=\"next\"", path, link)
		}
		if got := strings.Join(page.Repositories, ","); len(page.Repositories) != atoi(e.t, n) ||
			!strings.Contains(m[1], "last="+page.Repositories[len(page.Repositories)-1]+"&") {
			e.t.Errorf("GET %s = [%s] with Link %s, want a full page and last= its last name", path, got, link)
		}
		path = m[1]
	}
	e.t.Fatalf("more than 20 pages of /v2/_catalog?n=%s", n)
	return nil
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func basicAuth(token string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+token))}
}

// TestRegistryCatalog: /v2/_catalog lists the apps each caller may pull, in full pages
// whose Link names the page's last app: every app for a token, a limited token's own,
// the public ones for a caller without a token.
func TestRegistryCatalog(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken))
	for _, app := range []string{"f", "a", "b", "c", "d", "e"} {
		public := app == "b" || app == "d"
		body, _ := json.Marshal(map[string]any{"public": public})
		if r := e.do("PUT", "/v1/apps/"+app, bearer(adminToken), string(body)); r.status != http.StatusCreated {
			t.Fatalf("PUT %s = %d %s", app, r.status, r.body)
		}
	}
	reader := e.token("reader", []string{"read"}, nil)
	limited := e.token("limited", []string{"build"}, []string{"e", "zz", "c", "b"}) // zz is no app
	for _, tc := range []struct {
		name   string
		header map[string]string
		want   []string
	}{
		{"admin", bearer(adminToken), []string{"a", "b", "c", "d", "e", "f"}},
		{"token", bearer(reader), []string{"a", "b", "c", "d", "e", "f"}},
		{"token as basic", basicAuth(reader), []string{"a", "b", "c", "d", "e", "f"}},
		{"token limited to apps", bearer(limited), []string{"b", "c", "e"}},
		{"no token", nil, []string{"b", "d"}},
	} {
		for _, n := range []string{"1", "2", "4", "1000"} {
			if got := e.catalogPages(tc.header, n); !slices.Equal(got, tc.want) {
				t.Errorf("%s: /v2/_catalog?n=%s pages = %v, want %v", tc.name, n, got, tc.want)
			}
		}
	}
	for _, tc := range []struct {
		query  string
		status int
		body   string
	}{
		{"", 200, `{"repositories":["b","d"]}`},
		{"?n=0", 200, `{"repositories":[]}`},
		{"?n=1&last=d", 200, `{"repositories":[]}`},
		{"?last=b", 200, `{"repositories":["d"]}`},
		{"?n=-1", 400, "PAGINATION_NUMBER_INVALID"},
	} {
		r := e.do("GET", "/v2/_catalog"+tc.query, nil, "")
		if got := string(r.body); r.status != tc.status || !strings.Contains(got, tc.body) || r.header.Get("Link") != "" {
			t.Errorf("GET /v2/_catalog%s = %d %s (Link %q), want %d %s and no Link", tc.query, r.status, got, r.header.Get("Link"), tc.status, tc.body)
		}
	}
	r := e.do("GET", "/v2/_catalog", bearer("slw_not-a-token"), "")
	if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("GET /v2/_catalog with a bad token = %d %q %s, want 401 and a Basic challenge", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
}

// TestRegistryCatalogClient lists the catalog with go-containerregistry's client, which
// follows the Link headers: a limited token sees its apps, and a server without
// authentication shows every app.
func TestRegistryCatalogClient(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken))
	open := newEnv(t, storetest.Redis(t))
	for _, app := range []string{"c", "a", "b"} {
		e.do("PUT", "/v1/apps/"+app, bearer(adminToken), `{}`)
		open.do("PUT", "/v1/apps/"+app, nil, `{}`)
	}
	limited := e.token("limited", []string{"read"}, []string{"c", "a"})
	for _, tc := range []struct {
		name string
		env  *env
		auth authn.Authenticator
		want []string
	}{
		{"token limited to apps", e, &authn.Basic{Username: "ci", Password: limited}, []string{"a", "c"}},
		{"no token", e, authn.Anonymous, []string{}},
		{"no authentication", open, authn.Anonymous, []string{"a", "b", "c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := name.NewRegistry(strings.TrimPrefix(tc.env.url, "http://"), name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			got, err := remote.Catalog(context.Background(), reg, remote.WithAuth(tc.auth), remote.WithPageSize(1))
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("remote.Catalog = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
