package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

// anyBuild answers every build id as a succeeded build with an image, so releases can be
// made without compiling.
type anyBuild struct{}

func (anyBuild) BuildRef(_ context.Context, _, id string) (release.BuildRef, error) {
	return release.BuildRef{ID: id, Version: id[2:], Status: "succeeded", Succeeded: true,
		ImageDigest: store.DigestBytes([]byte(id)).String()}, nil
}

// TestReleasePagesNeverStale reads pages of releases from one replica while another
// replica, and a writer outside both, change what they show: releases, channel moves, the
// app's configuration, the app's deletion. Every read shows the change, although the
// reader keeps the pages it sent.
func TestReleasePagesNeverStale(t *testing.T) {
	rdb := storetest.Redis(t)
	writer, reader := newEnv(t, rdb), newEnv(t, rdb)
	releases := release.NewReleases(rdb, writer.blobs, anyBuild{})
	mk := func(v string) {
		t.Helper()
		if _, _, err := releases.Create(context.Background(), "hello", release.ReleaseSpec{BuildID: "b-" + v, Actor: "ci"}); err != nil {
			t.Fatal(err)
		}
	}
	type item struct {
		Version  string   `json:"version"`
		Channels []string `json:"channels"`
	}
	page := func(query string) []item {
		t.Helper()
		var got []item
		for range 2 { // the second read is answered from the kept page
			r := reader.do("GET", "/v1/apps/hello/releases"+query, nil, "")
			if r.status != http.StatusOK {
				t.Fatalf("GET releases%s = %d %s", query, r.status, r.body)
			}
			var p struct{ Items []item }
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatal(err)
			}
			if got != nil && !slices.EqualFunc(got, p.Items, func(a, b item) bool {
				return a.Version == b.Version && slices.Equal(a.Channels, b.Channels)
			}) {
				t.Fatalf("GET releases%s twice = %v, then %v", query, got, p.Items)
			}
			got = p.Items
		}
		return got
	}
	want := func(query string, w ...item) {
		t.Helper()
		got := page(query)
		if !slices.EqualFunc(got, w, func(a, b item) bool { return a.Version == b.Version && slices.Equal(a.Channels, b.Channels) }) {
			t.Errorf("GET releases%s = %v, want %v", query, got, w)
		}
	}
	move := func(ch, action, body string) {
		t.Helper()
		if r := writer.do("POST", "/v1/apps/hello/channels/"+ch+"/"+action, nil, body); r.status != http.StatusOK {
			t.Fatalf("%s %s = %d %s", action, ch, r.status, r.body)
		}
	}

	if r := writer.do("PUT", "/v1/apps/hello", nil, `{}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	want("", []item{}...)
	mk("1.0.0")
	want("", item{"1.0.0", []string{}})
	move("dev", "promote", `{"version":"1.0.0"}`)
	want("", item{"1.0.0", []string{"dev"}})
	mk("1.0.1")
	want("", item{"1.0.1", []string{}}, item{"1.0.0", []string{"dev"}})
	want("?limit=1", item{"1.0.1", []string{}})
	want("?channel=dev", item{"1.0.0", []string{"dev"}})
	move("dev", "promote", `{"version":"1.0.1"}`)
	move("staging", "promote", `{"from":"dev"}`)
	want("", item{"1.0.1", []string{"dev", "staging"}}, item{"1.0.0", []string{}})
	want("?limit=1", item{"1.0.1", []string{"dev", "staging"}})
	move("dev", "rollback", `{}`)
	want("", item{"1.0.1", []string{"staging"}}, item{"1.0.0", []string{"dev"}})

	// A replica of an older slipway moves dev back: its script writes the pointer and
	// appends its event, and bumps nothing else.
	if err := rdb.HSet(context.Background(), store.ChannelKey("hello", "dev"), "release", "1.0.1").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: store.EventsKey("hello"), Values: []string{"type", "channel.promoted"}}).Err(); err != nil {
		t.Fatal(err)
	}
	want("", item{"1.0.1", []string{"dev", "staging"}}, item{"1.0.0", []string{}})

	// The configuration drops staging: no release is in it any more.
	if r := writer.do("PUT", "/v1/apps/hello", nil, `{"channels":[{"name":"dev"},{"name":"prod","from":"dev"}]}`); r.status != http.StatusOK {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	want("", item{"1.0.1", []string{"dev"}}, item{"1.0.0", []string{}})

	// Deleted, the app has no pages; made again, the same keys answer anew.
	if r := writer.do("DELETE", "/v1/apps/hello", nil, ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE app = %d %s", r.status, r.body)
	}
	if r := reader.do("GET", "/v1/apps/hello/releases", nil, ""); r.status != http.StatusNotFound {
		t.Errorf("GET releases of a deleted app = %d %s, want 404", r.status, r.body)
	}
	if r := writer.do("PUT", "/v1/apps/hello", nil, `{"channels":[{"name":"qa"}]}`); r.status != http.StatusCreated {
		t.Fatalf("PUT app = %d %s", r.status, r.body)
	}
	if r := reader.do("GET", "/v1/apps/hello/releases?channel=dev", nil, ""); r.status != http.StatusNotFound {
		t.Errorf("GET releases in dev, which the app made again has not = %d %s, want 404", r.status, r.body)
	}
}
