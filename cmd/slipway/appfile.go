package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/slipway/slipway/openapi"
)

// appFileName is the file slipway init writes and slipway build reads at the top of a
// module.
const appFileName = "slipway.yaml"

// appFile is slipway.yaml: an app's configuration kept with its source (docs/config.md).
// A setting the file leaves out is left as the server has it (its default for a new
// app); one it names is made so on the server by slipway build and slipway init.
type appFile struct {
	App         string         `yaml:"app"`
	Main        *string        `yaml:"main,omitempty"`
	Platforms   *[]string      `yaml:"platforms,omitempty"`
	Ldflags     *string        `yaml:"ldflags,omitempty"`
	BaseImage   *string        `yaml:"base_image,omitempty"`
	Channels    *[]channelFile `yaml:"channels,omitempty"`
	AutoPromote *bool          `yaml:"auto_promote,omitempty"`
	Public      *bool          `yaml:"public,omitempty"`
}

// channelFile is one channel of slipway.yaml: its name, the channel its releases must
// have been in first, its gates (as the API's JSON: soak, approvals, checks, require,
// windows) and whether it is promoted into automatically.
type channelFile struct {
	Name        string         `yaml:"name"`
	From        string         `yaml:"from,omitempty"`
	Gates       map[string]any `yaml:"gates,omitempty"`
	AutoPromote bool           `yaml:"auto_promote,omitempty"`
}

// gates are the channel's gates as the API takes them; an error names what does not fit.
func (ch channelFile) gates() (*openapi.Gates, error) {
	if ch.Gates == nil {
		return nil, nil
	}
	b, err := json.Marshal(ch.Gates)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var g openapi.Gates
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("gates of channel %s: %v (see docs/releases.md)", ch.Name, err)
	}
	return &g, nil
}

// gatesFile is a channel's gates as slipway.yaml writes them.
func gatesFile(g *openapi.Gates) map[string]any {
	if g == nil {
		return nil
	}
	var m map[string]any
	b, _ := json.Marshal(g)
	_ = json.Unmarshal(b, &m)
	return m
}

// sameChannels reports whether two lists of channels configure the same thing.
func sameChannels(a, b []channelFile) bool {
	norm := func(chs []channelFile) string {
		type ch struct {
			Name, From  string
			Gates       *openapi.Gates
			AutoPromote bool
		}
		out := make([]ch, len(chs))
		for i, c := range chs {
			g, _ := c.gates()
			out[i] = ch{c.Name, c.From, g, c.AutoPromote}
		}
		j, _ := json.Marshal(out)
		return string(j)
	}
	return norm(a) == norm(b)
}

// appFileHeader opens the file slipway init writes.
const appFileHeader = `# slipway.yaml: how slipway builds and releases this module (docs/config.md).
# slipway build makes the app on the server match it before each build; a setting left
# out stays as the server has it.
`

// readAppFile reads dir/slipway.yaml; found is false when there is none. Unknown fields
// are errors that name them.
func readAppFile(dir string) (f *appFile, found bool, err error) {
	path := filepath.Join(dir, appFileName)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", path, err)
	}
	f, err = parseAppFile(data)
	if err != nil {
		return nil, true, &usageError{fmt.Sprintf("%s: %v", path, err)}
	}
	return f, true, nil
}

// parseAppFile decodes one YAML document strictly.
func parseAppFile(data []byte) (*appFile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f appFile
	if err := dec.Decode(&f); errors.Is(err, io.EOF) {
		return nil, errors.New("the file is empty; slipway init writes one")
	} else if err != nil {
		return nil, explainYAML(err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, errors.New("the file holds more than one YAML document")
	}
	if f.App == "" {
		return nil, errors.New("the file names no app; add a line app: NAME")
	}
	if f.Channels != nil {
		for _, ch := range *f.Channels {
			if _, err := ch.gates(); err != nil {
				return nil, err
			}
		}
	}
	return &f, nil
}

// yamlUnknownField is the decoder's message for an unknown field.
var yamlUnknownField = regexp.MustCompile(`^line (\d+): field (.+) not found in type main\.(\w+)$`)

// explainYAML rewrites the decoder's errors: an unknown field is named with the fields
// that are known there.
func explainYAML(err error) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return err
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = m
		if sub := yamlUnknownField.FindStringSubmatch(m); sub != nil {
			known, where := yamlFields(appFile{}), "slipway.yaml"
			if sub[3] == "channelFile" {
				known, where = yamlFields(channelFile{}), "a channel"
			}
			msgs[i] = fmt.Sprintf("line %s: unknown field %q (%s has %s)", sub[1], sub[2], where, strings.Join(known, ", "))
		}
	}
	return errors.New(strings.Join(msgs, "; "))
}

// yamlFields are the YAML names of v's fields.
func yamlFields(v any) []string {
	t := reflect.TypeOf(v)
	names := make([]string, t.NumField())
	for i := range names {
		names[i], _, _ = strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
	}
	return names
}

// writeAppFile writes f as dir/slipway.yaml, which must not exist yet.
func writeAppFile(dir string, f *appFile) (string, error) {
	var b bytes.Buffer
	b.WriteString(appFileHeader)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f); err != nil {
		return "", fmt.Errorf("encoding %s: %w", appFileName, err)
	}
	path := filepath.Join(dir, appFileName)
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := out.Write(b.Bytes()); err != nil {
		out.Close()
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, out.Close()
}

// appFileOf is the file that names every setting of a.
func appFileOf(a *openapi.App) *appFile {
	chans := make([]channelFile, len(a.Channels))
	for i, ch := range a.Channels {
		chans[i] = channelFile{Name: ch.Name, Gates: gatesFile(ch.Gates), AutoPromote: ch.AutoPromote != nil && *ch.AutoPromote}
		if ch.From != nil {
			chans[i].From = *ch.From
		}
	}
	return &appFile{App: a.Name, Main: &a.Main, Platforms: &a.Platforms, Ldflags: &a.Ldflags, BaseImage: &a.BaseImage,
		Channels: &chans, AutoPromote: &a.AutoPromote, Public: &a.Public}
}

// over returns in with the settings f names put over it.
func (f *appFile) over(in openapi.AppInput) openapi.AppInput {
	set(&in.Main, f.Main)
	set(&in.Platforms, f.Platforms)
	set(&in.Ldflags, f.Ldflags)
	set(&in.BaseImage, f.BaseImage)
	set(&in.AutoPromote, f.AutoPromote)
	set(&in.Public, f.Public)
	if f.Channels != nil {
		chans := make([]openapi.ChannelSpec, len(*f.Channels))
		for i, ch := range *f.Channels {
			g, _ := ch.gates() // checked when the file was read
			chans[i] = openapi.ChannelSpec{Name: ch.Name, From: optional(ch.From), Gates: g}
			if ch.AutoPromote {
				chans[i].AutoPromote = ptr(true)
			}
		}
		in.Channels = &chans
	}
	return in
}

// set sets *dst to v when v is not nil.
func set[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// differs lists the settings f names that a does not have, in the file's words.
func (f *appFile) differs(a *openapi.App) []string {
	want := f.over(appInputOf(a))
	has := appFileOf(a)
	var names []string
	for _, d := range []struct {
		name string
		same bool
	}{
		{"main", *want.Main == *has.Main},
		{"platforms", slices.Equal(*want.Platforms, *has.Platforms)},
		{"ldflags", *want.Ldflags == *has.Ldflags},
		{"base_image", *want.BaseImage == *has.BaseImage},
		{"channels", f.Channels == nil || sameChannels(*f.Channels, *has.Channels)},
		{"auto_promote", *want.AutoPromote == *has.AutoPromote},
		{"public", *want.Public == *has.Public},
	} {
		if !d.same {
			names = append(names, d.name)
		}
	}
	return names
}

// getApp reads app; nil when the server has no such app.
func (c *client) getApp(ctx context.Context, app string) (*openapi.App, error) {
	r, err := c.api.GetAppWithResponse(ctx, app, nil)
	var ae *apiError
	if errors.As(err, &ae) && ae.status == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if r.JSON200 == nil {
		return nil, unexpected("reading app "+app, r.HTTPResponse, r.Body)
	}
	return r.JSON200, nil
}

// applyAppFile makes the server's app match f: it creates the app from f when there is
// none, and when a setting f names differs, writes the app's configuration with f's
// settings over the server's, if nobody changed it since it was read (If-Match). It
// returns what it did in a line for stderr, "" when the app matched already (then it
// wrote nothing, so a token without the admin scope may build an app that matches).
func (c *client) applyAppFile(ctx context.Context, f *appFile) (string, error) {
	a, err := c.getApp(ctx, f.App)
	if err != nil {
		return "", fmt.Errorf("reading app %s to apply %s: %w", f.App, appFileName, err)
	}
	if a == nil {
		if _, err := c.putApp(ctx, f.App, 0, f.over(openapi.AppInput{})); err != nil {
			return "", fmt.Errorf("creating app %s from %s: %w", f.App, appFileName, err)
		}
		return fmt.Sprintf("created app %s from %s", f.App, appFileName), nil
	}
	changed := f.differs(a)
	if len(changed) == 0 {
		return "", nil
	}
	if _, err := c.putApp(ctx, f.App, a.Generation, f.over(appInputOf(a))); err != nil {
		return "", fmt.Errorf("updating app %s from %s (%s; build --no-apply leaves the app as it is): %w", f.App, appFileName, strings.Join(changed, ", "), err)
	}
	return fmt.Sprintf("updated app %s from %s: %s", f.App, appFileName, strings.Join(changed, ", ")), nil
}
