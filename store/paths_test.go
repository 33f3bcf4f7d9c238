package store_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/slipway/slipway/store"
)

// hashTag is the part of key Redis Cluster hashes: what is between the first { and the
// next }, when that is not empty, else "" (the whole key is hashed).
func hashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return ""
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return ""
	}
	return key[open+1 : open+1+end]
}

// TestRedisKeySlots checks the key layout against Redis Cluster: every Redis key of
// paths.go carries the hash tag of its owner ({<app>}, {webhooks} or {chatops}), so that
// a script over several keys of one owner stays in one slot, except the few global keys
// listed here, each touched by commands of its own. A name added to paths.go must be
// added here, to one of the lists.
func TestRedisKeySlots(t *testing.T) {
	const app = "hello"
	d := store.Digest("sha256:" + strings.Repeat("ab", 32))
	tagged := map[string]struct{ key, tag string }{
		"AppKey":               {store.AppKey(app), app},
		"ChannelApprovalsKey":  {store.ChannelApprovalsKey(app, "prod", "1.0.0"), app},
		"AutoPromoteLeaseKey":  {store.AutoPromoteLeaseKey(app), app},
		"BuildKey":             {store.BuildKey(app, "01J"), app},
		"BuildLogKey":          {store.BuildLogKey(app, "01J"), app},
		"BuildFactsKey":        {store.BuildFactsKey(app, "01J"), app},
		"BuildWakeChannel":     {store.BuildWakeChannel(app, "01J"), app},
		"BuildsKey":            {store.BuildsKey(app), app},
		"BuildsByStatusKey":    {store.BuildsByStatusKey(app, "queued"), app},
		"DedupeKey":            {store.DedupeKey(app, "ff"), app},
		"IdempotencyKey":       {store.IdempotencyKey(app, "ff"), app},
		"ReleaseKey":           {store.ReleaseKey(app, "1.0.0"), app},
		"ReleasesKey":          {store.ReleasesKey(app), app},
		"ReleaseSeqKey":        {store.ReleaseSeqKey(app), app},
		"ChannelKey":           {store.ChannelKey(app, "prod"), app},
		"ChannelHistoryKey":    {store.ChannelHistoryKey(app, "prod"), app},
		"ChannelSeenKey":       {store.ChannelSeenKey(app, "prod"), app},
		"ChannelStackKey":      {store.ChannelStackKey(app, "prod"), app},
		"ReferrersKey":         {store.ReferrersKey(app, d), app},
		"LinksKey":             {store.LinksKey(app), app},
		"LinksCompleteKey":     {store.LinksCompleteKey(app), app},
		"CosignTagsKey":        {store.CosignTagsKey(app), app},
		"EventsKey":            {store.EventsKey(app), app},
		"ChecksSecretKey":      {store.ChecksSecretKey(app), app},
		"CheckResultKey":       {store.CheckResultKey(app, "prod", "1.0.0", "smoke"), app},
		"VulnsKey":             {store.VulnsKey(app, d, 1767225600000), app},
		"WebhooksKey":          {store.WebhooksKey, "webhooks"},
		"WebhookKey":           {store.WebhookKey("01J"), "webhooks"},
		"WebhookDeliveriesKey": {store.WebhookDeliveriesKey("01J"), "webhooks"},
		"DeliveryKey":          {store.DeliveryKey("01J"), "webhooks"},
		"DeliveriesDueKey":     {store.DeliveriesDueKey, "webhooks"},
		"ChatSecretKey":        {store.ChatSecretKey("slack"), "chatops"},
		"ChatUsersKey":         {store.ChatUsersKey, "chatops"},
		"ChatUserKey":          {store.ChatUserKey("slack:U1"), "chatops"},
	}
	// The global keys: no script or multi-key command takes one of them with another key.
	global := map[string]string{
		"AppsIndexKey":  store.AppsIndexKey,
		"BuildQueueKey": store.BuildQueueKey,
		"TokensKey":     store.TokensKey,
		"TokenKey":      store.TokenKey("ff"),
		"RateLimitKey":  store.RateLimitKey("tok_01J"),
		"SessionKey":    store.SessionKey("ff"),
	}
	// Names in paths.go that are not Redis keys: blob store keys and consumer groups.
	other := []string{"BlobKey", "SourceKey", "LogKey", "ReleaseBlobKey", "BuildQueueGroup", "EventsGroup",
		"GoCachePrefix", "GoCacheActionKey", "GoCacheOutputKey"}

	for name, k := range tagged {
		if got := hashTag(k.key); got != k.tag {
			t.Errorf("%s = %q, hash tag %q, want {%s}", name, k.key, got, k.tag)
		}
	}
	for name, key := range global {
		if got := hashTag(key); got != "" {
			t.Errorf("%s = %q has the hash tag {%s}; move it to the tagged keys", name, key, got)
		}
	}

	f, err := parser.ParseFile(token.NewFileSet(), "paths.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, decl := range f.Decls {
		switch decl := decl.(type) {
		case *ast.FuncDecl:
			if decl.Recv == nil && decl.Name.IsExported() {
				names = append(names, decl.Name.Name)
			}
		case *ast.GenDecl:
			for _, spec := range decl.Specs {
				if vs, ok := spec.(*ast.ValueSpec); ok {
					for _, n := range vs.Names {
						if n.IsExported() {
							names = append(names, n.Name)
						}
					}
				}
			}
		}
	}
	listed := slices.Concat(slices.Collect(maps.Keys(tagged)), slices.Collect(maps.Keys(global)), other)
	for _, n := range names {
		if !slices.Contains(listed, n) {
			t.Errorf("paths.go declares %s, which this test does not list: add it to the tagged keys, the global keys, or the names that are not Redis keys", n)
		}
	}
	for _, n := range listed {
		if !slices.Contains(names, n) {
			t.Errorf("this test lists %s, which paths.go does not declare", n)
		}
	}
}
