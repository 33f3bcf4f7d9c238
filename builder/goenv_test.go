package builder

import (
	"path/filepath"
	"testing"

	"github.com/slipway/slipway/builder/gobuild"
)

func TestGoEnvBuildCache(t *testing.T) {
	base := gobuild.Env{Cache: "/data/cache/go-build", ModCache: "/data/cache/gomod"}
	prog := func(app string) string { return "/bin/slipway gocacheprog --socket /tmp/s/sock --namespace " + app }
	for _, tc := range []struct {
		name           string
		opts           WorkerOptions
		cache, goCProg string
	}{
		{"local", WorkerOptions{Go: base}, base.Cache, ""},
		{"shared", WorkerOptions{Go: base, CacheProg: prog}, base.Cache, prog("hello")},
		{"off", WorkerOptions{Go: base, CachePerBuild: true}, filepath.Join("/work/b1", "gocache"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Worker{opts: tc.opts}
			env := w.goEnv("hello", "/work/b1")
			if env.Cache != tc.cache || env.CacheProg != tc.goCProg || env.ModCache != base.ModCache {
				t.Errorf("goEnv(hello) = %+v, want GOCACHE %s, GOCACHEPROG %q", env, tc.cache, tc.goCProg)
			}
		})
	}
}
