// Package storetest gives tests the real servers slipway stores things in — a Redis
// database (or a whole Redis Cluster) and an S3 bucket of their own, or a redis-server
// process to stop and start — and the conformance suite every Blobs backend must pass.
//
// Addresses come from the environment that scripts/test.sh sets up. Without it the tests
// that need these servers skip with a message naming the script, except under CI=true,
// where they fail.
package storetest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/redis/go-redis/v9"
)

// The environment scripts/test.sh sets for the tests.
const (
	EnvRedisURL = "SLIPWAY_TEST_REDIS_URL" // redis://127.0.0.1:<port>
	// EnvRedisClusters names Redis Clusters of 3 masters each, such as
	// "127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003 127.0.0.1:7004,...": clusters are
	// separated by spaces, the addresses of one cluster by commas.
	EnvRedisClusters = "SLIPWAY_TEST_REDIS_CLUSTERS"
	// EnvRedis set to "cluster" makes Redis give each test a cluster of EnvRedisClusters
	// instead of a database of EnvRedisURL.
	EnvRedis       = "SLIPWAY_TEST_REDIS"
	EnvS3Endpoint  = "SLIPWAY_TEST_S3_ENDPOINT" // http://127.0.0.1:<port>
	EnvS3AccessKey = "AWS_ACCESS_KEY_ID"
	EnvS3SecretKey = "AWS_SECRET_ACCESS_KEY"
	EnvS3Region    = "AWS_REGION"
)

// need returns the environment variable or skips (fails under CI=true) when it is unset.
func need(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v != "" {
		return v
	}
	msg := fmt.Sprintf("%s is not set: run ./scripts/test.sh, which starts the Redis and S3 servers these tests use", name)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// RedisURL returns the URL of an empty Redis database for this test alone. The test
// script's server has 1024 databases; each test takes the next one and flushes it.
func RedisURL(t testing.TB) string {
	t.Helper()
	base := need(t, EnvRedisURL)
	ctx := context.Background()
	opts, err := redis.ParseURL(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvRedisURL, err)
	}
	opts.DB = 0
	admin := redis.NewClient(opts)
	defer admin.Close()
	n, err := admin.Incr(ctx, "slipway-test:next-db").Result()
	if err != nil {
		t.Fatalf("allocating a Redis database at %s: %v", base, err)
	}
	db := 1 + int(n-1)%1023
	opts.DB = db
	c := redis.NewClient(opts)
	defer c.Close()
	if err := c.FlushDB(ctx).Err(); err != nil {
		t.Fatalf("flushing Redis database %d: %v", db, err)
	}
	return strings.TrimSuffix(base, "/") + "/" + strconv.Itoa(db)
}

// Redis returns a client on an empty database of its own, closed when the test ends:
// a database of the server of EnvRedisURL, or, when EnvRedis is "cluster", a whole
// Redis Cluster of EnvRedisClusters (RedisCluster).
func Redis(t testing.TB) redis.UniversalClient {
	t.Helper()
	if os.Getenv(EnvRedis) == "cluster" {
		return RedisCluster(t)
	}
	opts, err := redis.ParseURL(RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// S3Config is how a test reaches its bucket.
type S3Config struct {
	Endpoint, Region, AccessKey, SecretKey, Bucket string
}

// S3 creates an empty bucket for this test and returns a client for it; the bucket and
// its objects are removed when the test ends.
func S3(t testing.TB) (*s3.Client, S3Config) {
	t.Helper()
	cfg := S3Config{
		Endpoint:  need(t, EnvS3Endpoint),
		AccessKey: need(t, EnvS3AccessKey),
		SecretKey: need(t, EnvS3SecretKey),
		Region:    os.Getenv(EnvS3Region),
		Bucket:    "slipway-test-" + randomHex(6),
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := NewS3Client(cfg)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &cfg.Bucket}); err != nil {
		t.Fatalf("creating bucket %s at %s: %v", cfg.Bucket, cfg.Endpoint, err)
	}
	t.Cleanup(func() { emptyAndDeleteBucket(client, cfg.Bucket) })
	return client, cfg
}

// NewS3Client returns a path-style client for cfg with static credentials.
func NewS3Client(cfg S3Config) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(cfg.Endpoint),
		Region:       cfg.Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
	})
}

func emptyAndDeleteBucket(client *s3.Client, bucket string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: &bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			break
		}
		for _, o := range page.Contents {
			_, _ = client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key})
		}
	}
	uploads, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err == nil {
		for _, u := range uploads.Uploads {
			_, _ = client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	_, _ = client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket})
}

// PendingUploads returns the keys of multipart uploads started and neither completed
// nor aborted in bucket.
func PendingUploads(ctx context.Context, client *s3.Client, bucket string) ([]string, error) {
	out, err := client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &bucket})
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(out.Uploads))
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys, nil
}

// RedisServer is a redis-server process of one test's own, for tests that stop it.
type RedisServer struct {
	t    testing.TB
	Addr string // 127.0.0.1:<port>
	dir  string
	cmd  *exec.Cmd
}

// StartRedisServer starts redis-server on a free loopback port, with its append-only
// file in a temporary directory, and stops it when the test ends.
func StartRedisServer(t testing.TB) *RedisServer {
	t.Helper()
	NeedRedisServer(t)
	s := &RedisServer{t: t, Addr: FreeAddr(t), dir: t.TempDir()}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// NeedRedisServer skips the test (fails it under CI=true) when redis-server is not on
// PATH.
func NeedRedisServer(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		msg := "redis-server is not on PATH: run ./scripts/test.sh, which installs it"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// URL returns the server's URL for database 0.
func (s *RedisServer) URL() string { return "redis://" + s.Addr + "/0" }

// Start starts the server (again) on its address, with the data it had.
func (s *RedisServer) Start() {
	s.t.Helper()
	host, port, _ := net.SplitHostPort(s.Addr)
	cmd := exec.Command("redis-server",
		"--bind", host, "--port", port, "--dir", s.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "",
		"--daemonize", "no", "--logfile", filepath.Join(s.dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("starting redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pingRedis(s.Addr) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	s.t.Fatalf("redis-server on %s did not answer PING within 10s; its log:\n%s", s.Addr, log)
}

// Stop stops the server at once (SIGKILL), as a crash would.
func (s *RedisServer) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// StartS3Server starts versitygw on a free loopback port, storing its buckets in dir, and
// stops it when the test ends. It returns how to reach it, without a bucket.
func StartS3Server(t testing.TB, dir string) S3Config {
	t.Helper()
	if _, err := exec.LookPath("versitygw"); err != nil {
		msg := "versitygw is not on PATH: run ./scripts/test.sh, which installs it"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg := S3Config{Region: "us-east-1", AccessKey: "slipwaytest", SecretKey: "slipwaytestsecret"}
	addr := FreeAddr(t)
	logPath := filepath.Join(t.TempDir(), "versitygw.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command("versitygw", "--port", addr, "--quiet", "posix", dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID="+cfg.AccessKey, "ROOT_SECRET_ACCESS_KEY="+cfg.SecretKey)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			cfg.Endpoint = "http://" + addr
			return cfg
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(logPath)
	t.Fatalf("versitygw on %s did not listen within 10s; its log:\n%s", addr, log)
	return cfg
}

func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return errors.New(strings.TrimSpace(line))
	}
	return nil
}

// FreeAddr returns a loopback address with a port nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
