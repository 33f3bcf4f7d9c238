package store_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/slipway/slipway/store"
	"github.com/slipway/slipway/store/storetest"
)

func TestS3Conformance(t *testing.T) {
	var pending func(ctx context.Context) ([]string, error)
	var client *s3.Client
	var cfg storetest.S3Config
	storetest.RunBlobs(t, func(t *testing.T) store.Blobs {
		client, cfg = storetest.S3(t)
		s, err := store.NewS3(client, cfg.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		pending = func(ctx context.Context) ([]string, error) {
			return storetest.PendingUploads(ctx, client, cfg.Bucket)
		}
		return s
	}, storetest.BlobsOptions{
		Pending: func(ctx context.Context) ([]string, error) { return pending(ctx) },
		Tamper: func(t *testing.T, _ store.Blobs, key string, content []byte) {
			t.Helper()
			// The raw client, without If-None-Match: the object is replaced.
			if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{
				Bucket: &cfg.Bucket, Key: &key, Body: bytes.NewReader(content),
			}); err != nil {
				t.Fatalf("replacing %s behind the store: %v", key, err)
			}
		},
	})
}

func TestS3PingMissingBucket(t *testing.T) {
	client, _ := storetest.S3(t)
	s, err := store.NewS3(client, "no-such-bucket-slipway")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Errorf("Ping(missing bucket) = nil, want an error")
	}
}

func TestS3PresignGet(t *testing.T) {
	ctx := context.Background()
	client, cfg := storetest.S3(t)
	plain, err := store.NewS3(client, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := plain.PresignGet(ctx, "blobs/x"); ok || err != nil {
		t.Errorf("PresignGet without WithPresign = ok %v, %v; want false, nil", ok, err)
	}
	if _, err := store.NewS3(client, cfg.Bucket, store.WithPresign(client, 0)); err == nil {
		t.Errorf("WithPresign(0) = nil error, want one")
	}
	s, err := store.NewS3(client, cfg.Bucket, store.WithPresign(client, time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("presigned content")
	d := store.DigestBytes(body)
	if _, err := s.Put(ctx, store.BlobKey(d), bytes.NewReader(body), d); err != nil {
		t.Fatal(err)
	}
	url, ok, err := s.PresignGet(ctx, store.BlobKey(d))
	if err != nil || !ok {
		t.Fatalf("PresignGet = %q %v %v", url, ok, err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("GET presigned URL = %d %q, want 200 %q", resp.StatusCode, got, body)
	}
	// The signature covers the key: another key with the same query is refused.
	other := strings.Replace(url, d.Hex(), strings.Repeat("0", 64), 1)
	resp, err = http.Get(other)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("GET with the key changed = 200, want a refusal")
	}
}

// recordingS3 is the real client, with the keys of every PutObject noted.
type recordingS3 struct {
	*s3.Client
	mu   sync.Mutex
	puts []string
}

func (r *recordingS3) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	r.mu.Lock()
	r.puts = append(r.puts, *in.Key)
	r.mu.Unlock()
	return r.Client.PutObject(ctx, in, opts...)
}

func (r *recordingS3) takePuts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.puts
	r.puts = nil
	return p
}

// TestS3PingWritesProbe checks that Ping proves the bucket takes writes, with an object
// under probes/ that it deletes, and that it does so at most once per probe interval.
func TestS3PingWritesProbe(t *testing.T) {
	ctx := context.Background()
	client, cfg := storetest.S3(t)
	rec := &recordingS3{Client: client}
	for _, tc := range []struct {
		name     string
		opts     []store.S3Option
		wantPuts int // over three pings in a row
	}{
		{"default interval", nil, 1},
		{"every ping", []store.S3Option{store.WithWriteProbe(0)}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := store.NewS3(rec, cfg.Bucket, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			rec.takePuts()
			for range 3 {
				if err := s.Ping(ctx); err != nil {
					t.Fatalf("Ping = %v, want nil", err)
				}
			}
			puts := rec.takePuts()
			if len(puts) != tc.wantPuts {
				t.Errorf("3 pings put %d objects %v, want %d", len(puts), puts, tc.wantPuts)
			}
			for _, k := range puts {
				if !strings.HasPrefix(k, "probes/") {
					t.Errorf("Ping put %s, want a key under probes/", k)
				}
			}
			out, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &cfg.Bucket})
			if err != nil {
				t.Fatal(err)
			}
			if len(out.Contents) != 0 {
				t.Errorf("bucket holds %d objects after pings (first %s), want none", len(out.Contents), *out.Contents[0].Key)
			}
		})
	}
	if _, err := store.NewS3(client, cfg.Bucket, store.WithWriteProbe(-time.Second)); err == nil {
		t.Errorf("WithWriteProbe(-1s) = nil error, want one")
	}
}

// TestS3PingFullDisk runs an S3 server of its own on a full tmpfs: the bucket answers
// HeadBucket and lists, but takes no new object, and Ping must say so.
func TestS3PingFullDisk(t *testing.T) {
	ctx := context.Background()
	dir := tmpfs(t, "4m")
	cfg := storetest.StartS3Server(t, dir)
	cfg.Bucket = "full"
	client := storetest.NewS3Client(cfg)
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &cfg.Bucket}); err != nil {
		t.Fatal(err)
	}
	s, err := store.NewS3(client, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping(bucket with room) = %v, want nil", err)
	}
	fill(t, dir)
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &cfg.Bucket}); err != nil {
		t.Fatalf("HeadBucket(full disk) = %v; the test needs a bucket that still answers", err)
	}
	// A new store: the first probe of the old one would still be trusted.
	s, err = store.NewS3(client, cfg.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Errorf("Ping(bucket on a full disk) = nil, want an error")
	} else {
		t.Log(err)
	}
}
