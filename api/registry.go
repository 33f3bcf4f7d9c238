package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/slipway/slipway/builder"
	"github.com/slipway/slipway/builder/sign"
	"github.com/slipway/slipway/openapi"
	"github.com/slipway/slipway/release"
	"github.com/slipway/slipway/store"
)

const maxManifestSize = 4 << 20

var manifestTypes = []string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// RegistryBase implements openapi.ServerInterface.
func (s *Server) RegistryBase(c echo.Context) error {
	c.Response().Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	return c.JSONBlob(http.StatusOK, []byte("{}"))
}

// registryApp checks that the repository names an app.
func (s *Server) registryApp(c echo.Context, app string) error {
	if release.ValidateName(app) != nil {
		return regErr(codeNameUnknown, "repository %q is not an app of this server", app)
	}
	if _, err := s.appOnce(c, app); err != nil {
		if errors.Is(err, release.ErrNotFound) {
			return regErr(codeNameUnknown, "no app named %q", app)
		}
		return err
	}
	return nil
}

// resolve turns a reference into a manifest digest: a digest as is, build-<id> to the
// build's image, a channel name to the release it holds now, a version to its release.
func (s *Server) resolve(c echo.Context, app, ref string) (store.Digest, error) {
	ctx := c.Request().Context()
	unknown := func(format string, args ...any) error {
		return regErr(codeManifestUnknown, format, args...)
	}
	if strings.Contains(ref, ":") {
		d, err := store.ParseDigest(ref)
		if err != nil {
			return "", regErr(codeDigestInvalid, "%s", err.Error())
		}
		return d, nil
	}
	if subject, suffix, ok := sign.ParseCosignTag(ref); ok {
		return s.resolveCosignTag(c, app, store.Digest(subject), suffix)
	}
	// A version with SemVer build metadata (1.0.0+build.1) is the tag 1.0.0_build.1: '+'
	// is not allowed in an OCI tag, and '_' is in no version or channel name.
	ref = strings.Replace(ref, "_", "+", 1)
	if id, ok := strings.CutPrefix(ref, "build-"); ok {
		b, err := s.deps.Builds.Get(ctx, app, id)
		if errors.Is(err, builder.ErrNotFound) {
			return "", unknown("no build %s in %s", id, app)
		}
		if err != nil {
			return "", err
		}
		if b.Image == nil {
			return "", unknown("build %s is %s and has no image", id, b.Status)
		}
		return store.Digest(b.Image.Digest), nil
	}
	st, err := s.deps.Channels.Get(ctx, app, ref)
	switch {
	case err == nil:
		if st.ImageDigest == "" {
			return "", unknown("channel %s of %s holds no release yet", ref, app)
		}
		return store.Digest(st.ImageDigest), nil
	case !errors.Is(err, release.ErrNotFound):
		return "", err
	}
	rel, err := s.deps.Releases.Get(ctx, app, ref)
	if errors.Is(err, release.ErrNotFound) {
		return "", unknown("%s has no tag %q: tags are build-<id>, release versions and channel names", app, ref)
	}
	if err != nil {
		return "", err
	}
	return store.Digest(rel.ImageDigest), nil
}

// resolveCosignTag resolves cosign's tag sha256-<hex>.sig (or .att) to the app's
// signature (or attestation) manifest of the image subject, whose layers hold every
// signature the app's builds of that image made. The tags are the app's own, so another
// app's image has none here.
func (s *Server) resolveCosignTag(c echo.Context, app string, subject store.Digest, suffix string) (store.Digest, error) {
	tag := "sha256-" + subject.Hex() + "." + suffix
	d, err := s.deps.Builds.CosignTag(c.Request().Context(), app, tag)
	if err != nil {
		return "", err
	}
	if d == "" {
		return "", regErr(codeManifestUnknown, "%s has no tag %s", app, tag)
	}
	return d, nil
}

// GetManifest implements openapi.ServerInterface.
func (s *Server) GetManifest(c echo.Context, app openapi.AppName, reference string) error {
	return s.serveManifest(c, app, reference)
}

// HeadManifest implements openapi.ServerInterface.
func (s *Server) HeadManifest(c echo.Context, app openapi.AppName, reference string) error {
	return s.serveManifest(c, app, reference)
}

// linked checks that the app's own images reference d. A digest of another app's
// images and a digest nobody stored get the same answer, so a repository cannot be used
// to probe another's content.
func (s *Server) linked(c echo.Context, app string, d store.Digest, code registryCode, what string) error {
	ok, err := s.deps.Builds.Linked(c.Request().Context(), s.deps.Blobs, app, d)
	if err != nil {
		return err
	}
	if !ok {
		return regErr(code, "no %s %s", what, d)
	}
	return nil
}

func (s *Server) serveManifest(c echo.Context, app, ref string) error {
	if err := s.registryApp(c, app); err != nil {
		return err
	}
	d, err := s.resolve(c, app, ref)
	if err != nil {
		return err
	}
	if err := s.linked(c, app, d, codeManifestUnknown, "manifest"); err != nil {
		return err
	}
	rc, info, err := s.deps.Blobs.Get(c.Request().Context(), store.BlobKey(d), 0, -1)
	if errors.Is(err, store.ErrNotFound) {
		return regErr(codeManifestUnknown, "no manifest %s", d)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	if info.Size > maxManifestSize {
		return regErr(codeManifestUnknown, "%s is not a manifest", d)
	}
	body, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	var m struct {
		MediaType string `json:"mediaType"`
	}
	if json.Unmarshal(body, &m) != nil || !slices.Contains(manifestTypes, m.MediaType) {
		return regErr(codeManifestUnknown, "%s is not a manifest", d)
	}
	h := c.Response().Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set(headerETag, `"`+d.String()+`"`)
	h.Set(echo.HeaderContentLength, strconv.Itoa(len(body)))
	h.Set(echo.HeaderContentType, m.MediaType)
	if c.Request().Method == http.MethodHead {
		c.Response().WriteHeader(http.StatusOK)
		return nil
	}
	return c.Blob(http.StatusOK, m.MediaType, body)
}

// GetBlob implements openapi.ServerInterface.
func (s *Server) GetBlob(c echo.Context, app openapi.AppName, digest string) error {
	return s.serveBlob(c, app, digest)
}

// HeadBlob implements openapi.ServerInterface.
func (s *Server) HeadBlob(c echo.Context, app openapi.AppName, digest string) error {
	return s.serveBlob(c, app, digest)
}

func (s *Server) serveBlob(c echo.Context, app, digest string) error {
	if err := s.registryApp(c, app); err != nil {
		return err
	}
	d, err := store.ParseDigest(digest)
	if err != nil {
		return regErr(codeDigestInvalid, "%s", err.Error())
	}
	if err := s.linked(c, app, d, codeBlobUnknown, "blob"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	key := store.BlobKey(d)
	get := c.Request().Method == http.MethodGet
	h := c.Response().Header()
	// With presigning on, the bytes come from the bucket, not through slipway: the client
	// has been authorized above, and the URL reads this blob only, for a while. Signing
	// is done in the process, without a request.
	presigned := ""
	if p, ok := s.deps.Blobs.(store.Presigner); ok && get {
		loc, ok, err := p.PresignGet(ctx, key)
		if err != nil {
			return err
		}
		if ok {
			presigned = loc
		}
	}
	// A GET of the whole blob opens it at once and takes its size from there: one request
	// to the store, not a Stat before it. A HEAD, a Range and a redirect need the size, or
	// the blob's existence, first.
	if get && presigned == "" && c.Request().Header.Get("Range") == "" {
		rc, info, err := s.deps.Blobs.Get(ctx, key, 0, -1)
		if errors.Is(err, store.ErrNotFound) {
			return regErr(codeBlobUnknown, "no blob %s", d)
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		setBlobHeaders(h, d)
		h.Set(echo.HeaderContentLength, strconv.FormatInt(info.Size, 10))
		c.Response().WriteHeader(http.StatusOK)
		s.sendBlob(c, d, rc)
		return nil
	}
	info, err := s.deps.Blobs.Stat(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return regErr(codeBlobUnknown, "no blob %s", d)
	}
	if err != nil {
		return err
	}
	h.Set("Docker-Content-Digest", d.String())
	if presigned != "" {
		return c.Redirect(http.StatusTemporaryRedirect, presigned)
	}
	offset, length, partial, err := parseRange(c.Request().Header.Get("Range"), info.Size)
	if err != nil {
		h.Set("Accept-Ranges", "bytes")
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", info.Size))
		return err
	}
	setBlobHeaders(h, d)
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", offset, offset+length-1, info.Size))
	}
	h.Set(echo.HeaderContentLength, strconv.FormatInt(length, 10))
	if !get {
		c.Response().WriteHeader(status)
		return nil
	}
	rc, _, err := s.deps.Blobs.Get(ctx, key, offset, length)
	if err != nil {
		return err
	}
	defer rc.Close()
	c.Response().WriteHeader(status)
	s.sendBlob(c, d, rc)
	return nil
}

// sendBlob copies a blob's bytes to the client after the header has gone. A verified
// store fails the read before the last bytes of content that does not match its digest,
// so the client sees the answer cut short, never the whole of it; that is logged, as the
// error handler would have logged it before the header.
func (s *Server) sendBlob(c echo.Context, d store.Digest, rc io.Reader) {
	if _, err := io.Copy(c.Response(), rc); errors.Is(err, store.ErrDigestMismatch) {
		s.log.ErrorContext(c.Request().Context(), "stored blob does not match its digest", "digest", d.String(), "err", err, "request_id", requestID(c))
	}
}

// setBlobHeaders sets the headers of every answer with a blob's bytes (or, for HEAD,
// its size).
func setBlobHeaders(h http.Header, d store.Digest) {
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Accept-Ranges", "bytes")
	h.Set(headerETag, `"`+d.String()+`"`)
	h.Set(echo.HeaderContentType, echo.MIMEOctetStream)
}

// parseRange reads a single "bytes=a-b", "bytes=a-" or "bytes=-n" range. As RFC 9110
// asks, a Range the server does not understand (another unit, several ranges, bad
// syntax) is ignored and the whole blob served; only a range that lies outside the blob
// is refused (416).
func parseRange(h string, size int64) (offset, length int64, partial bool, err error) {
	whole := func() (int64, int64, bool, error) { return 0, size, false, nil }
	spec, ok := strings.CutPrefix(h, "bytes=")
	if h == "" || !ok || strings.Contains(spec, ",") {
		return whole()
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return whole()
	}
	unsatisfiable := regErr(codeRangeInvalid, "range %q lies outside the blob's %d bytes", h, size)
	if first == "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return whole()
		}
		if n == 0 || size == 0 {
			return 0, 0, false, unsatisfiable
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	a, err := strconv.ParseInt(first, 10, 64)
	if err != nil || a < 0 {
		return whole()
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseInt(last, 10, 64); err != nil || b < a {
			return whole()
		}
	}
	if a >= size {
		return 0, 0, false, unsatisfiable
	}
	b = min(b, size-1)
	return a, b - a + 1, true, nil
}

// versionTag is the OCI tag of a release version: SemVer build metadata's '+' becomes
// '_', as the tag grammar [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127} has no '+'.
func versionTag(v string) string { return strings.Replace(v, "+", "_", 1) }

// ListTags implements openapi.ServerInterface.
func (s *Server) ListTags(c echo.Context, app openapi.AppName, params openapi.ListTagsParams) error {
	if err := s.registryApp(c, app); err != nil {
		return err
	}
	if params.N != nil && *params.N < 0 {
		return regErr(codePaginationNumberInvalid, "n=%d: the number of tags asked for must be 0 or more", *params.N)
	}
	ctx := c.Request().Context()
	tags := []string{}
	ids, err := s.deps.Builds.Imaged(ctx, app)
	if err != nil {
		return err
	}
	for _, id := range ids {
		tags = append(tags, "build-"+id)
	}
	versions, err := s.deps.Releases.Versions(ctx, app)
	if err != nil {
		return err
	}
	for _, v := range versions {
		tags = append(tags, versionTag(v))
	}
	chs, err := s.deps.Channels.List(ctx, app)
	if err != nil {
		return err
	}
	for _, ch := range chs {
		if ch.Release != "" {
			tags = append(tags, ch.Name)
		}
	}
	signed, err := s.deps.Builds.CosignTags(ctx, app)
	if err != nil {
		return err
	}
	tags = append(tags, signed...)
	slices.Sort(tags)
	tags = slices.Compact(tags)
	if params.Last != nil && *params.Last != "" {
		i, _ := slices.BinarySearch(tags, *params.Last)
		for i < len(tags) && tags[i] <= *params.Last {
			i++
		}
		tags = tags[i:]
	}
	if params.N != nil && *params.N < len(tags) {
		tags = tags[:*params.N]
		if len(tags) > 0 {
			setNextLink(c, "/v2/"+app+"/tags/list", tags[len(tags)-1], *params.N)
		}
	}
	return c.JSON(http.StatusOK, map[string]any{"name": app, "tags": tags})
}

// setNextLink points the response at the next page of a registry list: the names after
// last, n of them.
func setNextLink(c echo.Context, path, last string, n int) {
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {last}}
	c.Response().Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, path, q.Encode()))
}

// maxCatalogPage is the most names one page of /v2/_catalog holds, and its size when the
// client names none.
const maxCatalogPage = 1000

// ListCatalog implements openapi.ServerInterface: the apps the caller may pull, a page at
// a time in name order, every page full and a Link to the next while more follow.
func (s *Server) ListCatalog(c echo.Context, params openapi.ListCatalogParams) error {
	n := maxCatalogPage
	if params.N != nil {
		if *params.N < 0 {
			return regErr(codePaginationNumberInvalid, "n=%d: the number of repositories asked for must be 0 or more", *params.N)
		}
		n = min(*params.N, maxCatalogPage)
	}
	names, more, err := s.catalog(c, deref(params.Last), n)
	if err != nil {
		return err
	}
	if more {
		setNextLink(c, "/v2/_catalog", names[len(names)-1], n)
	}
	return c.JSON(http.StatusOK, map[string]any{"repositories": names})
}

// catalog returns up to n names, after last, of the apps the caller may pull, and whether
// more follow: a limited token's apps that exist, the public apps for a caller without a
// token on a server with authentication, and every app otherwise.
func (s *Server) catalog(c echo.Context, last string, n int) ([]string, bool, error) {
	ctx := c.Request().Context()
	names := []string{}
	if n == 0 {
		return names, false, nil
	}
	if p := caller(c); p.limited() {
		apps, next, err := s.ownApps(ctx, p.apps, last, n)
		for _, a := range apps {
			names = append(names, a.Name)
		}
		return names, next != "", err
	}
	anonymous := caller(c) == nil && s.opts.adminToken != ""
	for {
		apps, next, err := s.deps.Apps.List(ctx, last, n+1)
		if err != nil {
			return nil, false, err
		}
		for _, a := range apps {
			if anonymous && !a.Public {
				continue
			}
			if len(names) == n {
				return names, true, nil
			}
			names = append(names, a.Name)
		}
		if next == "" {
			return names, false, nil
		}
		last = next
	}
}

// ListReferrers implements openapi.ServerInterface.
func (s *Server) ListReferrers(c echo.Context, app openapi.AppName, digest string, params openapi.ListReferrersParams) error {
	if err := s.registryApp(c, app); err != nil {
		return err
	}
	d, err := store.ParseDigest(digest)
	if err != nil {
		return regErr(codeDigestInvalid, "%s", err.Error())
	}
	refs, err := s.deps.Builds.Referrers(c.Request().Context(), app, d, deref(params.ArtifactType))
	if err != nil {
		return err
	}
	if params.ArtifactType != nil && *params.ArtifactType != "" {
		c.Response().Header().Set("OCI-Filters-Applied", "artifactType")
	}
	body, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     refs,
	})
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "application/vnd.oci.image.index.v1+json", body)
}

func unsupported() error {
	return regErr(codeUnsupported, "this registry is read-only: images are made by builds, and tags move with releases and channels")
}

// PutManifest implements openapi.ServerInterface.
func (s *Server) PutManifest(echo.Context, openapi.AppName, string) error { return unsupported() }

// DeleteManifest implements openapi.ServerInterface.
func (s *Server) DeleteManifest(echo.Context, openapi.AppName, string) error { return unsupported() }

// DeleteBlob implements openapi.ServerInterface.
func (s *Server) DeleteBlob(echo.Context, openapi.AppName, string) error { return unsupported() }

// StartBlobUpload implements openapi.ServerInterface.
func (s *Server) StartBlobUpload(echo.Context, openapi.AppName) error { return unsupported() }

// GetBlobUpload implements openapi.ServerInterface.
func (s *Server) GetBlobUpload(echo.Context, openapi.AppName, string) error { return unsupported() }

// PatchBlobUpload implements openapi.ServerInterface.
func (s *Server) PatchBlobUpload(echo.Context, openapi.AppName, string) error { return unsupported() }

// PutBlobUpload implements openapi.ServerInterface.
func (s *Server) PutBlobUpload(echo.Context, openapi.AppName, string) error { return unsupported() }

// DeleteBlobUpload implements openapi.ServerInterface.
func (s *Server) DeleteBlobUpload(echo.Context, openapi.AppName, string) error { return unsupported() }
