package release_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// fakeChecker accepts linux and windows on amd64, arm64 and arm/v7, ldflags without
// "-extld", and base images without spaces: enough to test the rules of release.
type fakeChecker struct{}

func (fakeChecker) CheckPlatform(p string) (string, error) {
	switch p {
	case "linux/amd64", "linux/arm64", "windows/amd64", "linux/arm/v7":
		return p, nil
	case "linux/arm64/v8":
		return "linux/arm64", nil
	}
	return "", fmt.Errorf("unsupported platform %q", p)
}

func (fakeChecker) CheckLdflags(t string) error {
	if strings.Contains(t, "-extld") {
		return errors.New("flag -extld is not allowed")
	}
	return nil
}

func (fakeChecker) CheckBaseImage(ref string) error {
	if strings.Contains(ref, " ") {
		return errors.New("bad reference")
	}
	return nil
}

func ptr[T any](v T) *T { return &v }

func TestResolveDefaults(t *testing.T) {
	cfg, err := release.AppSpec{}.Resolve(fakeChecker{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Main != "." || !slices.Equal(cfg.Platforms, []string{"linux/amd64", "linux/arm64"}) ||
		cfg.BaseImage != "" || cfg.Ldflags != "-X main.version={{.Version}}" ||
		!slices.Equal(cfg.Channels, []release.Channel{{Name: "dev"}, {Name: "staging", From: "dev"}, {Name: "prod", From: "staging"}}) {
		t.Errorf("Resolve({}) = %+v, want the documented defaults", cfg)
	}
}

func TestResolveNormalizes(t *testing.T) {
	cfg, err := release.AppSpec{Main: ptr("cmd/hello/"), Platforms: ptr([]string{"linux/arm64/v8"})}.Resolve(fakeChecker{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Main != "./cmd/hello" || !slices.Equal(cfg.Platforms, []string{"linux/arm64"}) {
		t.Errorf("Resolve = main %q platforms %v, want ./cmd/hello [linux/arm64]", cfg.Main, cfg.Platforms)
	}
}

func TestResolveRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		spec   release.AppSpec
		fields []string
	}{
		{"no platforms", release.AppSpec{Platforms: ptr([]string{})}, []string{"platforms"}},
		{"bad platforms", release.AppSpec{Platforms: ptr([]string{"linux/amd64", "plan9/z80", "linux/amd64", "linux/arm64/v8", "linux/arm64"})},
			[]string{"platforms[1]", "platforms[2]", "platforms[4]"}},
		{"main absolute", release.AppSpec{Main: ptr("/etc")}, []string{"main"}},
		{"main escapes", release.AppSpec{Main: ptr("./../x")}, []string{"main"}},
		{"main hidden", release.AppSpec{Main: ptr("./.git")}, []string{"main"}},
		{"main odd char", release.AppSpec{Main: ptr("./cmd/a b")}, []string{"main"}},
		{"ldflags", release.AppSpec{Ldflags: ptr("-extld=/bin/sh")}, []string{"ldflags"}},
		{"base image", release.AppSpec{BaseImage: ptr("not a ref")}, []string{"base_image"}},
		{"no channels", release.AppSpec{Channels: ptr([]release.Channel{})}, []string{"channels"}},
		{"channel rules", release.AppSpec{Channels: ptr([]release.Channel{
			{Name: "dev", From: "prod"}, {Name: "Prod"}, {Name: "qa", From: "qa"}, {Name: "dev"}, {Name: "build-x"}, {Name: "prod", From: "dev"},
		})}, []string{"channels[0].from", "channels[1].name", "channels[2].from", "channels[3].name", "channels[4].name"}},
		{"everything at once", release.AppSpec{Main: ptr("/x"), Platforms: ptr([]string{"x"}), Ldflags: ptr("-extld")},
			[]string{"main", "platforms[0]", "ldflags"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.spec.Resolve(fakeChecker{})
			var verr *release.ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Resolve = %v, want a *ValidationError", err)
			}
			var got []string
			for _, f := range verr.Fields {
				got = append(got, f.Field)
				if f.Detail == "" {
					t.Errorf("field %s has no detail", f.Field)
				}
			}
			if !slices.Equal(got, tc.fields) {
				t.Errorf("Resolve fields = %v, want %v (%v)", got, tc.fields, err)
			}
		})
	}
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"hello", true}, {"a", true}, {"a-b-c1", true}, {strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false}, {"", false}, {"-a", false}, {"a-", false}, {"Hello", false}, {"a_b", false}, {"a.b", false},
	} {
		if err := release.ValidateName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestAppsCRUD(t *testing.T) {
	ctx := context.Background()
	rdb := storetest.Redis(t)
	apps := release.NewApps(rdb, fakeChecker{})

	app, created, err := apps.Put(ctx, "hello", release.AppSpec{}, release.Precondition{})
	if err != nil || !created || app.Generation != 1 || app.Name != "hello" || app.CreatedAt.IsZero() {
		t.Fatalf("Put(new) = %+v, %v, %v; want generation 1, created", app, created, err)
	}
	// The same configuration again changes nothing.
	again, created, err := apps.Put(ctx, "hello", release.AppSpec{}, release.Precondition{})
	if err != nil || created || again.Generation != 1 || !again.UpdatedAt.Equal(app.UpdatedAt) {
		t.Errorf("Put(same) = gen %d created %v err %v, want gen 1, not created", again.Generation, created, err)
	}
	// A change bumps the generation; a stale If-Match is refused and writes nothing.
	changed, _, err := apps.Put(ctx, "hello", release.AppSpec{Main: ptr("./cmd/hello")}, release.Precondition{Generation: 1})
	if err != nil || changed.Generation != 2 || changed.Main != "./cmd/hello" {
		t.Fatalf("Put(change, If-Match 1) = %+v, %v", changed, err)
	}
	_, _, err = apps.Put(ctx, "hello", release.AppSpec{Main: ptr("./x")}, release.Precondition{Generation: 1})
	var stale *release.StaleError
	if !errors.As(err, &stale) || stale.Current != 2 || !errors.Is(err, release.ErrStale) {
		t.Errorf("Put(If-Match 1) = %v, want StaleError{Current: 2}", err)
	}
	if _, _, err := apps.Put(ctx, "hello", release.AppSpec{}, release.Precondition{MustNotExist: true}); !errors.Is(err, release.ErrExists) {
		t.Errorf("Put(If-None-Match *) on existing = %v, want ErrExists", err)
	}
	if _, _, err := apps.Put(ctx, "nope", release.AppSpec{}, release.Precondition{MustExist: true}); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("Put(If-Match *) on missing = %v, want ErrNotFound", err)
	}
	got, err := apps.Get(ctx, "hello")
	if err != nil || got.Generation != 2 || got.Main != "./cmd/hello" {
		t.Errorf("Get = %+v, %v", got, err)
	}
	// Invalid specs write nothing.
	if _, _, err := apps.Put(ctx, "bad", release.AppSpec{Platforms: ptr([]string{})}, release.Precondition{}); err == nil {
		t.Error("Put(invalid) = nil error")
	}
	if _, err := apps.Get(ctx, "bad"); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("Get(after invalid put) = %v, want ErrNotFound", err)
	}
	if n := rdb.Exists(ctx, store.AppKey("bad")).Val(); n != 0 {
		t.Errorf("invalid put left a key behind")
	}

	if err := apps.Delete(ctx, "hello", release.Precondition{Generation: 1}); !errors.Is(err, release.ErrStale) {
		t.Errorf("Delete(stale) = %v, want ErrStale", err)
	}
	if err := apps.Delete(ctx, "hello", release.Precondition{Generation: 2}); err != nil {
		t.Errorf("Delete = %v", err)
	}
	if err := apps.Delete(ctx, "hello", release.Precondition{}); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("Delete(again) = %v, want ErrNotFound", err)
	}
	if _, err := apps.Get(ctx, "hello"); !errors.Is(err, release.ErrNotFound) {
		t.Errorf("Get(deleted) = %v, want ErrNotFound", err)
	}
}

func TestAppsListPages(t *testing.T) {
	ctx := context.Background()
	apps := release.NewApps(storetest.Redis(t), fakeChecker{})
	var want []string
	for i := range 25 {
		name := fmt.Sprintf("app-%02d", i)
		want = append(want, name)
		if _, _, err := apps.Put(ctx, name, release.AppSpec{}, release.Precondition{}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		page, next, err := apps.List(ctx, after, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page {
			got = append(got, a.Name)
		}
		if next == "" {
			break
		}
		after = next
	}
	if !slices.Equal(got, want) {
		t.Errorf("List pages = %v, want %v", got, want)
	}
}

func TestAppsConcurrentConditionalPuts(t *testing.T) {
	ctx := context.Background()
	apps := release.NewApps(storetest.Redis(t), fakeChecker{})
	if _, _, err := apps.Put(ctx, "race", release.AppSpec{}, release.Precondition{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for i := range 20 {
		wg.Go(func() {
			_, _, err := apps.Put(ctx, "race", release.AppSpec{Main: ptr(fmt.Sprintf("./cmd/c%d", i))}, release.Precondition{Generation: 1})
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			} else if !errors.Is(err, release.ErrStale) {
				t.Errorf("Put = %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d conditional puts on generation 1 won, want exactly 1", wins)
	}
}
