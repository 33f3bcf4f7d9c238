package webhook

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// loopback is what tests allow webhooks to reach: their receivers.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// fast are short timings for tests; nothing asserts how fast they are.
func fast(extra ...Option) []Option {
	return append([]Option{
		WithAllowNets(loopback), WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		WithTimeout(2 * time.Second), WithVisibility(3 * time.Second),
	}, extra...)
}

// request is one request a receiver got.
type request struct {
	at     time.Time
	header http.Header
	body   []byte
}

// receiver is a webhook target on loopback that records every request and answers
// with the status its answer function picks (200 without one).
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []request
	answer func(n int, w http.ResponseWriter) int // n counts requests from 1
	got    chan struct{}
}

func newReceiver(t testing.TB, answer func(n int, w http.ResponseWriter) int) *receiver {
	r := &receiver{answer: answer, got: make(chan struct{}, 1<<16)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// newReceiverAt is newReceiver listening on addr.
func newReceiverAt(t testing.TB, addr string, answer func(n int, w http.ResponseWriter) int) *receiver {
	r := &receiver{answer: answer, got: make(chan struct{}, 1<<16)}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	r.Listener.Close()
	r.Listener = ln
	r.Start()
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, request{time.Now(), req.Header.Clone(), body})
	n := len(r.reqs)
	answer := r.answer
	r.mu.Unlock()
	status := http.StatusOK
	if answer != nil {
		status = answer(n, w)
	}
	w.WriteHeader(status)
	r.got <- struct{}{}
}

func (r *receiver) requests() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.reqs...)
}

// waitFor polls cond until it holds, failing the test after a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 60s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runDispatcher runs a dispatcher until the test ends.
func runDispatcher(t testing.TB, rdb redis.UniversalClient, opts ...Option) *Dispatcher {
	t.Helper()
	d, err := NewDispatcher(rdb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return d
}

func newStore(t testing.TB, rdb redis.UniversalClient, opts ...Option) *Store {
	t.Helper()
	s, err := NewStore(rdb, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func subscribe(t testing.TB, s *Store, spec Spec) (Subscription, string) {
	t.Helper()
	sub, secret, err := s.Create(context.Background(), spec)
	if err != nil {
		t.Fatalf("Create(%+v) = %v", spec, err)
	}
	return sub, secret
}

func deliveries(t testing.TB, s *Store, sub string) []Delivery {
	t.Helper()
	ds, _, err := s.Deliveries(context.Background(), sub, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
