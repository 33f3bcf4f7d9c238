package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/slipway/slipway/openapi"
)

// sumsName is the name of the checksums file, as sha256sum -c reads it.
const sumsName = "SHA256SUMS"

// downloadFlags are the flags and arguments of `slipway download`.
type downloadFlags struct {
	cf                           clientFlags
	app, build, version, channel string
	platforms                    stringList
	dir                          string
	key                          string
	noVerify                     bool
}

func parseDownloadFlags(e *cliEnv, cmd *clientCommand, args []string) (*downloadFlags, error) {
	f := &downloadFlags{}
	fs := newFlagSet(cmd, &f.cf, false)
	fs.StringVar(&f.version, "version", "", "the build that release `V` was made from")
	fs.StringVar(&f.channel, "channel", "", "the build of the release channel `CH` holds")
	fs.Var(&f.platforms, "platform", "only the binary of platform `P`, GOOS/GOARCH[/variant]; repeat it or separate with commas (default: every one)")
	fs.StringVar(&f.dir, "o", ".", "the directory `DIR` to save into; made if missing")
	fs.StringVar(&f.key, "key", "", "verify with only the public keys in PEM `FILE` (such as slipway.pub) instead of the server's")
	fs.BoolVar(&f.noVerify, "no-verify", false, "skip the signature and provenance checks")
	pos, err := parseArgs(fs, e, cmd, args, 1, 2)
	if err != nil {
		return nil, err
	}
	f.app = pos[0]
	if len(pos) == 2 {
		f.build = pos[1]
	}
	named := 0
	for _, s := range []string{f.build, f.version, f.channel} {
		if s != "" {
			named++
		}
	}
	if named != 1 {
		return nil, &usageError{"download needs one of BUILD, --version V or --channel CH (see slipway download --help)"}
	}
	return f, nil
}

// savedFile is one binary download saved and checked.
type savedFile struct {
	Name     string `json:"name"`
	Platform string `json:"platform"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// cmdDownload is `slipway download`.
func cmdDownload(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	f, err := parseDownloadFlags(e, cmd, args)
	if err != nil {
		return err
	}
	c, err := f.cf.client(e)
	if err != nil {
		return err
	}
	b, raw, err := c.buildToDownload(ctx, f)
	if err != nil {
		return err
	}
	signed, err := c.verifyDownload(ctx, e, f, b)
	if err != nil {
		return err
	}
	sums, err := c.checksums(ctx, f.app, b.Id, signed)
	if err != nil {
		return err
	}
	platforms := []string(f.platforms)
	if len(platforms) == 0 {
		for _, a := range b.Artifacts {
			platforms = append(platforms, a.Platform)
		}
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return err
	}
	saved := make([]savedFile, 0, len(platforms))
	for _, p := range platforms {
		s, err := c.downloadBinary(ctx, f.app, b.Id, p, sums, f.dir)
		if err != nil {
			return err
		}
		saved = append(saved, s)
	}
	if err := writeSums(f.dir, saved); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "slipway: saved %d binaries of build %s in %s, each matching %s; there, sha256sum -c %s checks them again\n",
		len(saved), b.Id, f.dir, sumsName, sumsName)
	return writeSaved(e.stdout, f.cf.json, raw, saved)
}

// buildToDownload reads the build the flags name: by id, by the release made from it, or
// by the channel holding that release.
func (c *client) buildToDownload(ctx context.Context, f *downloadFlags) (*openapi.Build, []byte, error) {
	id := f.build
	version := f.version
	if f.channel != "" {
		ch, err := c.getChannel(ctx, f.app, f.channel)
		if err != nil {
			return nil, nil, err
		}
		if ch.Release == nil || *ch.Release == "" {
			return nil, nil, fmt.Errorf("channel %s of %s holds no release yet: there is nothing to download", f.channel, f.app)
		}
		version = *ch.Release
	}
	if version != "" {
		r, err := c.api.GetReleaseWithResponse(ctx, f.app, version)
		if err != nil {
			return nil, nil, err
		}
		if r.JSON200 == nil {
			return nil, nil, unexpected("reading release "+version, r.HTTPResponse, r.Body)
		}
		id = r.JSON200.BuildId
	}
	r, err := c.api.GetBuildWithResponse(ctx, f.app, id)
	if err != nil {
		return nil, nil, err
	}
	if r.JSON200 == nil {
		return nil, nil, unexpected("reading build "+id, r.HTTPResponse, r.Body)
	}
	return r.JSON200, r.Body, nil
}

// verifyDownload verifies build b as slipway verify does, unless --no-verify, and returns
// the SHA256SUMS whose signature it verified. A server that signs nothing is trusted
// without a check (and says so) unless --key asks for one.
func (c *client) verifyDownload(ctx context.Context, e *cliEnv, f *downloadFlags, b *openapi.Build) ([]byte, error) {
	if f.noVerify {
		return nil, nil
	}
	if f.key == "" {
		_, err := c.api.GetSigningKeysWithResponse(ctx)
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusNotFound {
			fmt.Fprintf(e.stderr, "slipway: the server signs nothing, so build %s is not verified (--key FILE insists on a signature)\n", b.Id)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	keys, err := c.trustedKeys(ctx, f.key)
	if err != nil {
		return nil, err
	}
	v, err := c.verifyBuild(ctx, keys, f.app, b)
	if err != nil {
		return nil, fmt.Errorf("%w; nothing downloaded (--no-verify downloads without the check)", err)
	}
	fmt.Fprintf(e.stderr, "slipway: build %s verified: image signature, provenance and %s (key %s)\n", b.Id, sumsName, v.sumsKey)
	return v.sums, nil
}

// checksums reads the build's SHA256SUMS: each file's name and hex digest. With signed,
// the SHA256SUMS whose signature was verified, it reads that instead.
func (c *client) checksums(ctx context.Context, app, id string, signed []byte) (map[string]string, error) {
	body := signed
	if body == nil {
		r, err := c.api.GetBuildChecksumsWithResponse(ctx, app, id)
		if err != nil {
			return nil, err
		}
		body = r.Body
	}
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), " ")
		name = strings.TrimPrefix(strings.TrimPrefix(name, " "), "*")
		if !ok || len(sum) != sha256.Size*2 || name == "" {
			return nil, fmt.Errorf("the %s of build %s has a line that is not \"<sha256>  <name>\": %q", sumsName, id, sc.Text())
		}
		sums[name] = strings.ToLower(sum)
	}
	return sums, nil
}

// downloadBinary saves the binary of one platform in dir under the name the server gives
// it, which SHA256SUMS must list, after checking it against SHA256SUMS; a binary that
// does not match is removed and refused.
func (c *client) downloadBinary(ctx context.Context, app, id, platform string, sums map[string]string, dir string) (savedFile, error) {
	resp, err := c.getBinary(ctx, app, id, platform)
	if err != nil {
		return savedFile{}, err
	}
	defer resp.Body.Close()
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	name := params["filename"]
	want, listed := sums[name]
	if !listed || name != filepath.Base(name) || name == sumsName || strings.HasPrefix(name, ".") {
		return savedFile{}, fmt.Errorf("the server named the %s binary of build %s %q, which %s does not list; nothing saved", platform, id, name, sumsName)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*.part")
	if err != nil {
		return savedFile{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), resp.Body)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	got := hex.EncodeToString(h.Sum(nil))
	switch {
	case err != nil:
		err = fmt.Errorf("downloading %s: %w", name, err)
	case got != want:
		err = &checksumError{name: name, got: got, want: want}
	default:
		err = os.Chmod(tmp.Name(), 0o755)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return savedFile{}, err
	}
	return savedFile{Name: name, Platform: platform, Size: n, SHA256: got}, nil
}

// getBinary asks for the binary of platform, GOOS/GOARCH[/variant].
func (c *client) getBinary(ctx context.Context, app, id, platform string) (*http.Response, error) {
	p := strings.Split(platform, "/")
	switch len(p) {
	case 2:
		return c.api.GetArtifact(ctx, app, id, p[0], p[1])
	case 3:
		return c.api.GetArtifactVariant(ctx, app, id, p[0], p[1], p[2])
	}
	return nil, &usageError{fmt.Sprintf("--platform %q is not GOOS/GOARCH or GOOS/GOARCH/variant", platform)}
}

// writeSums writes dir/SHA256SUMS for the files saved, as sha256sum writes it.
func writeSums(dir string, saved []savedFile) error {
	var b strings.Builder
	for _, s := range saved {
		fmt.Fprintf(&b, "%s  %s\n", s.SHA256, s.Name)
	}
	tmp, err := os.CreateTemp(dir, "."+sumsName+".*.part")
	if err != nil {
		return err
	}
	_, err = tmp.WriteString(b.String())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, sumsName))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", sumsName, err)
	}
	return nil
}

// writeSaved prints the files saved as a table, or with asJSON the build as the API
// gave it with the files: {"build": {...}, "files": [...]}.
func writeSaved(w io.Writer, asJSON bool, build []byte, saved []savedFile) error {
	if asJSON {
		b, err := json.Marshal(struct {
			Build json.RawMessage `json:"build"`
			Files []savedFile     `json:"files"`
		}{build, saved})
		if err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
		return writeJSON(w, b)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tPLATFORM\tSIZE\tSHA256")
	for _, s := range saved {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, s.Platform, humanBytes(s.Size), s.SHA256)
	}
	fmt.Fprintf(tw, "%s\t-\t-\t-\n", sumsName)
	return tw.Flush()
}
