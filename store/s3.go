package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3API is the part of the S3 client the store uses; *s3.Client implements it.
type S3API interface {
	s3.HeadObjectAPIClient
	s3.ListObjectsV2APIClient
	GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, opts ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, opts ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// S3 is a Blobs backend on an S3 bucket. Objects up to one part are written with one
// PutObject; larger ones stream part by part through a multipart upload that is completed
// only when the digest matches. Both writes carry If-None-Match: *, so an existing object
// is never replaced, even by a concurrent writer.
type S3 struct {
	client     S3API
	bucket     string
	partSize   int
	bufs       sync.Pool
	presign    *s3.PresignClient
	presignTTL time.Duration

	probeEvery time.Duration
	probeMu    sync.Mutex
	probedAt   time.Time // when a write probe last succeeded
}

var (
	_ Blobs  = (*S3)(nil)
	_ Pinger = (*S3)(nil)
)

// S3Option configures an S3 store.
type S3Option func(*S3) error

// MinPartSize is the smallest part S3 accepts in a multipart upload (but the last).
const MinPartSize = 5 << 20

// WithPartSize sets the size of each part of a multipart upload, which is also the
// memory one Put holds at a time. Default 8 MiB; at least MinPartSize.
func WithPartSize(n int) S3Option {
	return func(s *S3) error {
		if n < MinPartSize {
			return fmt.Errorf("part size %d is below the S3 minimum of %d bytes", n, MinPartSize)
		}
		s.partSize = n
		return nil
	}
}

// WithPresign lets PresignGet hand out GET URLs signed by client, valid for ttl, so
// readers can fetch objects from the bucket directly.
func WithPresign(client *s3.Client, ttl time.Duration) S3Option {
	return func(s *S3) error {
		if ttl <= 0 {
			return fmt.Errorf("presigned URL lifetime %s is not positive", ttl)
		}
		s.presign, s.presignTTL = s3.NewPresignClient(client), ttl
		return nil
	}
}

// WithWriteProbe sets how long Ping trusts a successful write probe (a small object put
// under probes/ and deleted at once) before it writes another; in between, Ping only
// checks that the bucket answers. Readiness is polled every few seconds, and this keeps
// it from costing a PUT each time. Default 1 minute; 0 probes on every Ping.
func WithWriteProbe(every time.Duration) S3Option {
	return func(s *S3) error {
		if every < 0 {
			return fmt.Errorf("write probe interval %s is negative", every)
		}
		s.probeEvery = every
		return nil
	}
}

// PresignGet returns a URL that reads key straight from the bucket for the configured
// lifetime, or ok false when the store was made without WithPresign.
func (s *S3) PresignGet(ctx context.Context, key string) (url string, ok bool, err error) {
	if s.presign == nil {
		return "", false, nil
	}
	if err := ValidateKey(key); err != nil {
		return "", false, err
	}
	req, err := s.presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key},
		s3.WithPresignExpires(s.presignTTL))
	if err != nil {
		return "", false, fmt.Errorf("presigning %s: %w", key, err)
	}
	return req.URL, true, nil
}

// NewS3 returns a store on bucket, reached through client.
func NewS3(client S3API, bucket string, opts ...S3Option) (*S3, error) {
	if bucket == "" {
		return nil, errors.New("S3 bucket name is empty")
	}
	s := &S3{client: client, bucket: bucket, partSize: 8 << 20, probeEvery: time.Minute}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.bufs.New = func() any { b := make([]byte, s.partSize); return &b }
	return s, nil
}

// Put implements Blobs. Content that can be read again where it is — a file, a
// bytes.Reader — is hashed and sent from there, part by part, and never copied into
// memory; other content is read into a buffer of its own size up to one part, and into a
// part buffer past that.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, want Digest) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	if src, ok := rereadable(r); ok {
		info, err := s.putFrom(ctx, key, src, want)
		if err == nil {
			src.consume()
		}
		return info, err
	}
	sp := smallBufs.Get().(*[]byte)
	small := *sp
	n, err := io.ReadFull(ctxReader{ctx, r}, small)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		defer smallBufs.Put(sp)
		return s.putSingle(ctx, key, small[:n], want)
	case err != nil:
		smallBufs.Put(sp)
		return Info{}, fmt.Errorf("reading content for %s: %w", key, err)
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	copy(buf, small)
	smallBufs.Put(sp)
	m, err := io.ReadFull(ctxReader{ctx, r}, buf[n:])
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return s.putSingle(ctx, key, buf[:n+m], want)
	case err != nil:
		return Info{}, fmt.Errorf("reading content for %s: %w", key, err)
	}
	return s.putMultipart(ctx, key, want, bufferedParts(ctx, r, buf, len(buf)))
}

// smallBufs hold the first bytes of content of unknown size: most objects (manifests,
// configs, documents) end within them, and take no part buffer.
var smallBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// section is content Put can read as often as it needs: size bytes of at from base.
type section struct {
	at      io.ReaderAt
	base    int64
	size    int64
	consume func() // moves the original reader past the content once it is stored
}

// rereadable returns r's unread content as a section when r is a regular file or a
// bytes.Reader.
func rereadable(r io.Reader) (section, bool) {
	switch v := r.(type) {
	case *bytes.Reader:
		base := v.Size() - int64(v.Len())
		return section{at: v, base: base, size: int64(v.Len()), consume: func() { _, _ = v.Seek(0, io.SeekEnd) }}, true
	case *os.File:
		fi, err := v.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			return section{}, false
		}
		base, err := v.Seek(0, io.SeekCurrent)
		if err != nil || base > fi.Size() {
			return section{}, false
		}
		return section{at: v, base: base, size: fi.Size() - base, consume: func() { _, _ = v.Seek(0, io.SeekEnd) }}, true
	}
	return section{}, false
}

// putFrom stores src: one PutObject up to a part, else a multipart upload whose parts
// are read from src twice (hashed, then sent), completed only if the digest matches.
func (s *S3) putFrom(ctx context.Context, key string, src section, want Digest) (info Info, err error) {
	if src.size <= int64(s.partSize) {
		h := sha256.New()
		if _, err := io.Copy(h, ctxReader{ctx, io.NewSectionReader(src.at, src.base, src.size)}); err != nil {
			return Info{}, fmt.Errorf("reading content for %s: %w", key, err)
		}
		return s.putObject(ctx, key, io.NewSectionReader(src.at, src.base, src.size), src.size, h.Sum(nil), want)
	}
	var off int64
	return s.putMultipart(ctx, key, want, func() (io.ReadSeeker, int64, error) {
		n := min(int64(s.partSize), src.size-off)
		if n <= 0 {
			return nil, 0, nil
		}
		part := io.NewSectionReader(src.at, src.base+off, n)
		off += n
		return part, n, nil
	})
}

// putSingle stores body with one PutObject.
func (s *S3) putSingle(ctx context.Context, key string, body []byte, want Digest) (Info, error) {
	sum := sha256.Sum256(body)
	return s.putObject(ctx, key, bytes.NewReader(body), int64(len(body)), sum[:], want)
}

// putObject stores the size bytes of body, whose SHA-256 is sum, with one PutObject that
// carries the checksum, if sum is want's.
func (s *S3) putObject(ctx context.Context, key string, body io.ReadSeeker, size int64, sum []byte, want Digest) (Info, error) {
	got := digestOfSum(sum)
	if want != "" && got != want {
		return Info{}, fmt.Errorf("%w: %s: content is %s, expected %s", ErrDigestMismatch, key, got, want)
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            &key,
		Body:           body,
		ContentLength:  aws.Int64(size),
		IfNoneMatch:    aws.String("*"),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum)),
	})
	if err != nil {
		return Info{}, translatePutError(key, err)
	}
	return Info{Key: key, Size: size, ModTime: time.Now().UTC(), Digest: got}, nil
}

// putMultipart uploads the parts next returns, in order, until it returns no part, and
// completes the upload only if the content hashes to want; otherwise it aborts it. Each
// part is read twice: hashed, then sent.
func (s *S3) putMultipart(ctx context.Context, key string, want Digest, next func() (io.ReadSeeker, int64, error)) (info Info, err error) {
	// Fail fast rather than upload a large object only to be refused at the end.
	if _, err := s.Stat(ctx, key); err == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrExists, key)
	} else if !errors.Is(err, ErrNotFound) {
		return Info{}, err
	}
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Info{}, fmt.Errorf("starting upload of %s: %w", key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			s.abortUpload(ctx, key, uploadID)
		}
	}()

	h := sha256.New()
	var parts []types.CompletedPart
	var size int64
	for partNumber := int32(1); ; partNumber++ {
		part, n, err := next()
		if err != nil {
			return Info{}, fmt.Errorf("reading content for %s: %w", key, err)
		}
		if part == nil {
			break
		}
		if _, err := io.Copy(h, ctxReader{ctx, part}); err != nil {
			return Info{}, fmt.Errorf("reading content for %s: %w", key, err)
		}
		if _, err := part.Seek(0, io.SeekStart); err != nil {
			return Info{}, fmt.Errorf("reading content for %s: %w", key, err)
		}
		size += n
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        &s.bucket,
			Key:           &key,
			UploadId:      uploadID,
			PartNumber:    aws.Int32(partNumber),
			Body:          part,
			ContentLength: aws.Int64(n),
		})
		if err != nil {
			return Info{}, fmt.Errorf("uploading part %d of %s: %w", partNumber, key, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(partNumber)})
	}
	got := DigestOf(h)
	if want != "" && got != want {
		return Info{}, fmt.Errorf("%w: %s: content is %s, expected %s", ErrDigestMismatch, key, got, want)
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &key,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		return Info{}, translatePutError(key, err)
	}
	return Info{Key: key, Size: size, ModTime: time.Now().UTC(), Digest: got}, nil
}

// bufferedParts returns the parts of content read from r into buf, whose first filled
// bytes are the first part.
func bufferedParts(ctx context.Context, r io.Reader, buf []byte, filled int) func() (io.ReadSeeker, int64, error) {
	return func() (io.ReadSeeker, int64, error) {
		if filled < 0 {
			n, err := io.ReadFull(ctxReader{ctx, r}, buf)
			if n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
				return nil, 0, nil
			}
			if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, 0, err
			}
			filled = n
		}
		part := bytes.NewReader(buf[:filled])
		n := int64(filled)
		filled = -1
		return part, n, nil
	}
}

// abortUpload aborts the upload uploadID even when ctx is canceled, so no parts are left
// behind.
func (s *S3) abortUpload(ctx context.Context, key string, uploadID *string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.bucket, Key: &key, UploadId: uploadID})
}

// Get implements Blobs.
func (s *S3) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, Info, error) {
	if err := ValidateKey(key); err != nil {
		return nil, Info{}, err
	}
	if offset < 0 {
		return nil, Info{}, fmt.Errorf("negative offset %d for %s", offset, key)
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if offset > 0 || length >= 0 {
		if length == 0 {
			info, err := s.Stat(ctx, key)
			if err != nil {
				return nil, Info{}, err
			}
			if offset > info.Size {
				return nil, Info{}, fmt.Errorf("offset %d outside %s (%d bytes)", offset, key, info.Size)
			}
			return io.NopCloser(strings.NewReader("")), info, nil
		}
		rng := "bytes=" + strconv.FormatInt(offset, 10) + "-"
		if length > 0 {
			rng += strconv.FormatInt(offset+length-1, 10)
		}
		in.Range = &rng
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if isInvalidRange(err) {
			// The offset is at or past the end: empty at the end, an error past it.
			info, serr := s.Stat(ctx, key)
			if serr != nil {
				return nil, Info{}, serr
			}
			if offset == info.Size {
				return io.NopCloser(strings.NewReader("")), info, nil
			}
			return nil, Info{}, fmt.Errorf("offset %d outside %s (%d bytes)", offset, key, info.Size)
		}
		return nil, Info{}, translateS3Error("getting", key, err)
	}
	info := Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}
	if total, ok := contentRangeTotal(aws.ToString(out.ContentRange)); ok {
		info.Size = total
	}
	return out.Body, info, nil
}

// contentRangeTotal reads the total size from "bytes 0-9/100".
func contentRangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return n, err == nil
}

// Stat implements Blobs.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	if err := ValidateKey(key); err != nil {
		return Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return Info{}, translateS3Error("stat", key, err)
	}
	return Info{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// Delete implements Blobs.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		if err := translateS3Error("deleting", key, err); errors.Is(err, ErrNotFound) {
			return nil
		}
		return fmt.Errorf("deleting %s: %w", key, err)
	}
	return nil
}

// List implements Blobs.
func (s *S3) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		if err := validatePrefix(prefix); err != nil {
			yield(Info{}, err)
			return
		}
		p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(Info{}, fmt.Errorf("listing %s: %w", prefix, err))
				return
			}
			for _, o := range page.Contents {
				if !yield(Info{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}, nil) {
					return
				}
			}
		}
	}
}

// probePrefix is where Ping's write probes go (see paths.go).
const probePrefix = "probes/"

// Ping implements Pinger: the bucket must take a new object and let it be deleted (see
// WithWriteProbe); while a recent probe succeeded, it must answer HeadBucket.
func (s *S3) Ping(ctx context.Context) error {
	s.probeMu.Lock()
	fresh := !s.probedAt.IsZero() && time.Since(s.probedAt) < s.probeEvery
	s.probeMu.Unlock()
	if fresh {
		if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err != nil {
			return fmt.Errorf("bucket %s: %w", s.bucket, err)
		}
		return nil
	}
	if err := s.probeWrite(ctx); err != nil {
		return err
	}
	s.probeMu.Lock()
	s.probedAt = time.Now()
	s.probeMu.Unlock()
	return nil
}

// probeWrite puts a small object under a random key below probePrefix and deletes it.
func (s *S3) probeWrite(ctx context.Context) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	key := probePrefix + hex.EncodeToString(b)
	body := []byte("slipway readiness probe\n")
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &key,
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}); err != nil {
		return fmt.Errorf("bucket %s is not writable: %w", s.bucket, err)
	}
	// Deleted even when ctx ends just now, so no probe is left behind.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := s.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return fmt.Errorf("bucket %s: deleting write probe %s: %w", s.bucket, key, err)
	}
	return nil
}

func translatePutError(key string, err error) error {
	if code, status := s3ErrorCode(err); code == "PreconditionFailed" || code == "ConditionalRequestConflict" ||
		status == http.StatusPreconditionFailed {
		return fmt.Errorf("%w: %s", ErrExists, key)
	}
	return fmt.Errorf("storing %s: %w", key, err)
}

func translateS3Error(op, key string, err error) error {
	var noKey *types.NoSuchKey
	var notFound *types.NotFound
	if errors.As(err, &noKey) || errors.As(err, &notFound) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if code, status := s3ErrorCode(err); code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("%s %s: %w", op, key, err)
}

func isInvalidRange(err error) bool {
	code, status := s3ErrorCode(err)
	return code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable
}

// s3ErrorCode returns the S3 error code and HTTP status of err, where it has them.
func s3ErrorCode(err error) (code string, status int) {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code = apiErr.ErrorCode()
	}
	var respErr *smithyhttp.ResponseError
	if errors.As(err, &respErr) {
		status = respErr.HTTPStatusCode()
	}
	return code, status
}
