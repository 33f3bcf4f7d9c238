package store

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/redis/go-redis/v9"
)

// IsUnavailable reports whether err means a backend (Redis, the blob store) could not
// be reached or could not answer for now — a fault of the infrastructure, worth retrying
// later — rather than an answer about the request: a refused or reset connection, a
// timeout, a closed client, a server that is loading, failing over or answering 5xx.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var netErr net.Error
	var maxAttempts *retry.MaxAttemptsError
	switch {
	case errors.As(err, &netErr),
		errors.As(err, &maxAttempts),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ETIMEDOUT),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, redis.ErrClosed),
		errors.Is(err, redis.ErrPoolTimeout), errors.Is(err, redis.ErrPoolExhausted):
		return true
	}
	// Redis answers these while it cannot serve the command: starting, failing over.
	var rerr redis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, prefix := range []string{"LOADING", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "BUSY "} {
			if strings.HasPrefix(msg, prefix) {
				return true
			}
		}
		return false
	}
	if code, status := s3ErrorCode(err); status >= http.StatusInternalServerError ||
		code == "SlowDown" || code == "ServiceUnavailable" || code == "RequestTimeout" || code == "InternalError" {
		return true
	}
	return errors.Is(err, io.EOF) && !errors.Is(err, redis.Nil)
}
