package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/slipway/slipway/api"
	"github.com/slipway/slipway/auth"
	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/buildertest"
	"github.com/slipway/slipway/events"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// portalReleases is how many releases the portal's benchmark app has.
const portalReleases = 10_000

// BenchmarkPortalPages times each page of the portal, as the server serves it (the handler
// in process, from the request to the last byte of the page), for an app with 10 000
// releases, 300 channel moves and one real build, signed in with a token limited to the
// app. It reports each page's median and 99th percentile in milliseconds; the target is
// 50 ms for every page.
func BenchmarkPortalPages(b *testing.B) {
	ctx := context.Background()
	rdb := storetest.Redis(b)
	blobs, err := store.NewFS(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	tc, goEnv := buildertest.Toolchain(b)
	builds := builder.NewBuilds(rdb)
	intake, err := builder.NewIntake(builds, blobs, tc, builder.IntakeOptions{SpoolDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	apps := release.NewApps(rdb, builder.AppChecker{Toolchain: tc})
	releases := release.NewReleases(rdb, blobs, api.ReleaseBuilds(builds))
	channels := release.NewChannels(rdb, apps)
	tokens := auth.NewTokens(rdb)
	const admin = "portal-bench-admin-token"
	h, err := api.New(api.Deps{Apps: apps, Releases: releases, Channels: channels, Builds: builds, Intake: intake,
		Blobs: blobs, Idempotency: api.NewIdempotency(rdb, 0), Tokens: tokens, Events: events.NewLog(rdb),
		Sessions: auth.NewSessions(rdb, 0), Log: slog.New(slog.DiscardHandler)}, api.WithAdminToken(admin))
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()

	// One real build of the app, by an in-process worker.
	if _, _, err := apps.Put(ctx, "hello", release.AppSpec{}, release.Precondition{}); err != nil {
		b.Fatal(err)
	}
	w, err := builder.NewWorker(builds, blobs, tc, builder.WorkerOptions{DataDir: b.TempDir(), Go: goEnv, Visibility: 5 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	defer func() { stop(); <-done }()
	src := buildertest.Module(b, "hello", map[string]string{"main.go": buildertest.HelloMain})
	req, _ := http.NewRequest("POST", srv.URL+"/v1/apps/hello/builds?version=1.0.0", strings.NewReader(string(src)))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	list, _, err := builds.List(ctx, "hello", "", "", 1)
	if err != nil || len(list) != 1 {
		b.Fatalf("the build was not recorded: %v", err)
	}
	buildID := list[0].ID
	for {
		bd, err := builds.Get(ctx, "hello", buildID)
		if err != nil {
			b.Fatal(err)
		}
		if bd.Status.Done() {
			if bd.Status != builder.StatusSucceeded {
				b.Fatalf("build %s: %v", bd.Status, bd.Error)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// 10 000 releases of it, sixteen writers at once, and 300 moves of the channels.
	var g errgroup.Group
	g.SetLimit(16)
	for i := range portalReleases {
		v := fmt.Sprintf("1.%d.%d", i/1000, i%1000)
		g.Go(func() error {
			_, _, err := releases.Create(ctx, "hello", release.ReleaseSpec{BuildID: buildID, Version: v, Actor: "bench"})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		v := fmt.Sprintf("1.9.%d", 900+i%100)
		for _, m := range []struct{ ch, from string }{{"dev", ""}, {"staging", "dev"}, {"prod", "staging"}} {
			mv := release.Move{Action: release.ActionPromote, Version: v, FromChannel: m.from, Actor: "bench", Reason: "bench"}
			if m.from != "" {
				mv.Version = ""
			}
			if _, err := channels.Move(ctx, "hello", m.ch, mv); err != nil {
				b.Fatal(err)
			}
		}
	}

	// Signed in with a token limited to the app.
	secret, _, err := tokens.Create(ctx, "viewer", []string{"read", "promote"}, []string{"hello"})
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = client.PostForm(srv.URL+"/ui/signin", url.Values{"token": {secret}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("signing in: %v %v", resp, err)
	}
	resp.Body.Close()
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "slipway_session" {
			cookie = c
		}
	}

	pages := []struct{ name, path string }{
		{"apps", "/ui/"},
		{"app", "/ui/apps/hello"},
		{"app_prod", "/ui/apps/hello?channel=prod"},
		{"app_oldest", "/ui/apps/hello?before=30"},
		{"channel", "/ui/apps/hello/channels/prod"},
		{"channel_oldest", "/ui/apps/hello/channels/prod?before=30"},
		{"release", "/ui/apps/hello/releases/1.5.500"},
		{"build", "/ui/apps/hello/builds/" + buildID},
	}
	times := make([][]time.Duration, len(pages))
	serve := func(i int) {
		r := httptest.NewRequest("GET", pages[i].path, nil)
		r.AddCookie(cookie)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, r)
		times[i] = append(times[i], time.Since(start))
		if rec.Code != http.StatusOK {
			b.Fatalf("GET %s = %d:\n%s", pages[i].path, rec.Code, rec.Body)
		}
	}
	for i := range pages { // warm
		serve(i)
	}
	clear(times)
	b.ResetTimer()
	for range b.N {
		for range 20 {
			for i := range pages {
				serve(i)
			}
		}
	}
	b.StopTimer()
	for i, p := range pages {
		b.ReportMetric(float64(percentile(times[i], 0.5).Microseconds())/1000, p.name+"_p50_ms")
		b.ReportMetric(float64(percentile(times[i], 0.99).Microseconds())/1000, p.name+"_p99_ms")
	}
}
