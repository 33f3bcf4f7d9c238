package api

import (
	"strconv"
	"sync"
)

// pageCache keeps the answers of GET /v1/apps/{app}/releases as they were sent, each with
// the app's stamp when its page was read (release.Releases.Stamp). An answer is sent
// again only after one small read shows the stamp unchanged: every release, channel move
// and configuration change of the app changes it (the first two append to the app's
// event stream in the same script), so a cached answer is never stale, and replicas never
// disagree. It holds at most maxPageCacheBytes; past that it starts
// over.
type pageCache struct {
	mu    sync.Mutex
	pages map[string]cachedPage
	bytes int
}

type cachedPage struct {
	stamp string
	body  []byte
}

const maxPageCacheBytes = 16 << 20

// pageKey names one page: the app, the channel filter, the cursor and the limit.
func pageKey(app, filter string, before int64, limit int) string {
	return app + "\x00" + filter + "\x00" + strconv.FormatInt(before, 10) + "\x00" + strconv.Itoa(limit)
}

// get returns the cached answer for key, if any, and the stamp it was read with.
func (c *pageCache) get(key string) (cachedPage, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pages[key]
	return p, ok
}

// put keeps body, read at stamp, as the answer for key.
func (c *pageCache) put(key, stamp string, body []byte) {
	if len(body) > maxPageCacheBytes/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pages == nil || c.bytes+len(body) > maxPageCacheBytes {
		c.pages, c.bytes = map[string]cachedPage{}, 0
	}
	if old, ok := c.pages[key]; ok {
		c.bytes -= len(old.body)
	}
	c.pages[key] = cachedPage{stamp: stamp, body: body}
	c.bytes += len(body)
}
