package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/store/storetest"
)

// TestVersionInTagForm builds and releases v1.4.2, as a CI job passes a git tag: the
// version is 1.4.2, and the answers to those requests (only those) say what was given.
func TestVersionInTagForm(t *testing.T) {
	e := newEnv(t, storetest.Redis(t))
	e.startWorker()
	e.do("PUT", "/v1/apps/hello", nil, `{"platforms":["linux/amd64"]}`)
	src := buildertest.Module(t, "hello", map[string]string{"main.go": buildertest.HelloMain})

	r := e.do("POST", "/v1/apps/hello/builds?version=v1.4.2", gz(src), string(src))
	b := r.build(t)
	if r.status != http.StatusAccepted || b.Version != "1.4.2" || deref(b.VersionNormalizedFrom) != "v1.4.2" {
		t.Fatalf("POST build ?version=v1.4.2 = %d %s, want 202, version 1.4.2 normalized from v1.4.2", r.status, r.body)
	}
	if got := e.waitBuild("hello", b.Id); got.Status != openapi.BuildStatusSucceeded || got.Version != "1.4.2" || got.VersionNormalizedFrom != nil {
		t.Fatalf("GET build = %s %s from %v, want succeeded 1.4.2 and no version_normalized_from", got.Status, got.Version, got.VersionNormalizedFrom)
	}
	again := e.do("POST", "/v1/apps/hello/builds?version=1.4.2", gz(src), string(src))
	if b2 := again.build(t); b2.Id != b.Id || b2.VersionNormalizedFrom != nil {
		t.Errorf("POST build ?version=1.4.2 of the same source = %s, want build %s again without version_normalized_from", again.body, b.Id)
	}

	for _, tc := range []struct {
		name, body, wantFrom string
		status               int
	}{
		{name: "tag form", body: `{"build_id":"` + b.Id + `","version":"v1.4.2"}`, wantFrom: "v1.4.2", status: http.StatusCreated},
		{name: "again, plain", body: `{"build_id":"` + b.Id + `","version":"1.4.2"}`, status: http.StatusOK},
		{name: "the build's", body: `{"build_id":"` + b.Id + `"}`, status: http.StatusOK},
	} {
		r := e.do("POST", "/v1/apps/hello/releases", nil, tc.body)
		var rel openapi.Release
		_ = json.Unmarshal(r.body, &rel)
		if r.status != tc.status || rel.Version != "1.4.2" || deref(rel.VersionNormalizedFrom) != tc.wantFrom {
			t.Errorf("%s: POST release %s = %d %s, want %d, version 1.4.2, version_normalized_from %q", tc.name, tc.body, r.status, r.body, tc.status, tc.wantFrom)
		}
	}
	if r := e.do("GET", "/v1/apps/hello/releases/1.4.2", nil, ""); r.status != http.StatusOK {
		t.Errorf("GET release 1.4.2 = %d %s", r.status, r.body)
	}
	// Wherever a release is named, the tag form names it too.
	if r := e.do("GET", "/v1/apps/hello/releases/v1.4.2", nil, ""); r.status != http.StatusOK {
		t.Errorf("GET release v1.4.2 = %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/dev/promote", nil, `{"version":"v1.4.2"}`); r.status != http.StatusOK || !strings.Contains(string(r.body), `"release":"1.4.2"`) {
		t.Errorf("promote dev to v1.4.2 = %d %s, want dev holding 1.4.2", r.status, r.body)
	}
	if r := e.do("POST", "/v1/apps/hello/channels/dev/rollback", nil, `{"to":"v1.4.2"}`); r.status == http.StatusNotFound {
		t.Errorf("rollback dev to v1.4.2 = %d %s, want 1.4.2 found", r.status, r.body)
	}

	for _, bad := range []string{"vv1.4.2", "v1", "V1.4.2"} {
		if r := e.do("POST", "/v1/apps/hello/builds?version="+bad, gz(src), string(src)); r.status != http.StatusUnprocessableEntity {
			t.Errorf("POST build ?version=%s = %d %s, want 422", bad, r.status, r.body)
		}
	}
}
