package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// TestListAppsLimitedToken: a token limited to some apps pages over those apps alone:
// every page but the last is full, and every cursor names an app it may see.
func TestListAppsLimitedToken(t *testing.T) {
	e := newEnv(t, storetest.Redis(t), api.WithAdminToken(adminToken))
	for i := range 24 {
		name := "app-" + string(rune('a'+i))
		if r := e.do("PUT", "/v1/apps/"+name, bearer(adminToken), `{}`); r.status != http.StatusCreated {
			t.Fatalf("PUT %s = %d %s", name, r.status, r.body)
		}
	}
	// Limited to seven apps (given out of order, one twice) and two names that are no app.
	mine := []string{"app-x", "app-c", "app-h", "app-d0", "app-m", "app-q", "app-c", "app-t", "zzz", "app-w"}
	tok := e.token("portal", []string{"read"}, mine)
	want := []string{"app-c", "app-h", "app-m", "app-q", "app-t", "app-w", "app-x"}
	for _, limit := range []int{1, 2, 3, 7, 100} {
		var got []string
		path := "/v1/apps?limit=" + itoa(int64(limit))
		for pages := 0; ; pages++ {
			if pages > len(want) {
				t.Fatalf("limit %d: more pages than apps", limit)
			}
			r := e.do("GET", path, bearer(tok), "")
			var page openapi.AppList
			if err := json.Unmarshal(r.body, &page); r.status != http.StatusOK || err != nil {
				t.Fatalf("GET %s = %d %s", path, r.status, r.body)
			}
			for _, a := range page.Items {
				got = append(got, a.Name)
			}
			if page.NextCursor == nil {
				break
			}
			if len(page.Items) != limit {
				t.Errorf("limit %d: a page of %d before the last: %s", limit, len(page.Items), r.body)
			}
			path = "/v1/apps?limit=" + itoa(int64(limit)) + "&cursor=" + *page.NextCursor
		}
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: paged %v, want %v", limit, got, want)
		}
	}
	// Unlimited tokens page over every app as before.
	var page openapi.AppList
	_ = json.Unmarshal(e.do("GET", "/v1/apps?limit=2", bearer(adminToken), "").body, &page)
	if len(page.Items) != 2 || page.Items[0].Name != "app-a" || page.NextCursor == nil {
		t.Errorf("first page of 2 for the admin = %+v", page)
	}
}
