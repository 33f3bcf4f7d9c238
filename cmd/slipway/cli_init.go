package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"

	"github.com/slipway/slipway/openapi"
)

// cmdInit is `slipway init`: it gives the module in DIR a slipway.yaml and the server an
// app that matches it.
//
//   - DIR has slipway.yaml already: the app is created or updated from it, as slipway
//     build would.
//   - The server has the app (--app, or the name made from the module path): the file is
//     written from the app's settings, and nothing changes on the server. init never
//     replaces settings someone made with settings it guessed.
//   - Neither: the app is created with the server's defaults and the main package found in
//     DIR, and the file is written from what the server answered.
func cmdInit(ctx context.Context, e *cliEnv, cmd *clientCommand, args []string) error {
	var cf clientFlags
	fs := newFlagSet(cmd, &cf, false)
	var app string
	fs.StringVar(&app, "app", "", "the app's name `A` (default: the last element of the module path, as a DNS label)")
	pos, c, err := cf.parse(fs, e, cmd, args, 0, 1)
	if err != nil {
		return err
	}
	dir := "."
	if len(pos) == 1 {
		dir = pos[0]
	}
	modPath, err := modulePath(dir)
	if err != nil {
		return err
	}
	f, found, err := readAppFile(dir)
	if err != nil {
		return err
	}
	if found {
		return initFromFile(ctx, e, c, dir, app, f)
	}
	if app == "" {
		app = appNameOf(modPath)
	}
	a, created, note, err := initApp(ctx, c, dir, app)
	if err != nil {
		return err
	}
	path, err := writeAppFile(dir, appFileOf(a))
	if err != nil {
		return err
	}
	if cf.json {
		return writeInitJSON(e, a)
	}
	if created {
		fmt.Fprintf(e.stdout, "created app %s: main %s, platforms %s, channels %s\n", a.Name, a.Main, strings.Join(a.Platforms, ","), channelOrder(a.Channels))
	} else {
		fmt.Fprintf(e.stdout, "app %s exists on the server: %s holds its settings; nothing changed there (--app names another app)\n", a.Name, path)
	}
	if note != "" {
		fmt.Fprintln(e.stdout, note)
	}
	_, err = fmt.Fprintf(e.stdout, "wrote %s; next: slipway build %s --release --promote %s\n", path, dir, firstChannel(a.Channels))
	return err
}

// initFromFile is init in a directory with slipway.yaml: it applies the file.
func initFromFile(ctx context.Context, e *cliEnv, c *client, dir, app string, f *appFile) error {
	path := filepath.Join(dir, appFileName)
	if app != "" && app != f.App {
		return &usageError{fmt.Sprintf("%s is for app %s, not %s; leave --app out, or edit the file", path, f.App, app)}
	}
	did, err := c.applyAppFile(ctx, f)
	if err != nil {
		return err
	}
	if did == "" {
		did = "app " + f.App + " matches it already"
	}
	_, err = fmt.Fprintf(e.stdout, "%s exists: %s\n", path, did)
	return err
}

// initApp reads app from the server, or creates it with the main package found in dir
// (If-None-Match: *, so it never replaces one made meanwhile). note says how main was
// chosen when that was a guess.
func initApp(ctx context.Context, c *client, dir, app string) (a *openapi.App, created bool, note string, err error) {
	a, err = c.getApp(ctx, app)
	if err != nil || a != nil {
		return a, false, "", err
	}
	mainPkg, note := findMain(dir, app)
	r, err := c.putApp(ctx, app, 0, openapi.AppInput{Main: &mainPkg})
	if err != nil {
		return nil, false, "", fmt.Errorf("creating app %s: %w", app, err)
	}
	return r.JSON201, true, note, nil
}

// writeInitJSON prints the app as the API describes it.
func writeInitJSON(e *cliEnv, a *openapi.App) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return writeJSON(e.stdout, b)
}

// modulePath reads the module path from dir/go.mod.
func modulePath(dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", &usageError{fmt.Sprintf("%s has no go.mod; run slipway init in the module's root directory", dir)}
	}
	if err != nil {
		return "", err
	}
	p := modfile.ModulePath(data)
	if p == "" {
		return "", &usageError{fmt.Sprintf("%s has no module line", filepath.Join(dir, "go.mod"))}
	}
	return p, nil
}

// appNameOf makes an app name (a DNS label) of a module path's last element, or of the
// one before a major version suffix (example.com/tool/v2 is tool): lowercase, with a
// '-' for each run of other characters, at most 63 characters; "app" if nothing is left.
func appNameOf(modPath string) string {
	elems := strings.Split(modPath, "/")
	last := elems[len(elems)-1]
	if _, major, ok := module.SplitPathVersion(modPath); ok && major != "" && len(elems) > 1 {
		last = elems[len(elems)-2]
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(last) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
		} else {
			dash = true
		}
	}
	name := b.String()
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if name == "" {
		return "app"
	}
	return name
}

// findMain finds the main package of the module in dir: the module's top, else
// cmd/<app>, else the main packages under cmd/ (the first, with a note, when there are
// several); "." when there is none, which the build will report.
func findMain(dir, app string) (mainPkg, note string) {
	if isMainPackage(dir) {
		return ".", ""
	}
	if isMainPackage(filepath.Join(dir, "cmd", app)) {
		return "./cmd/" + app, ""
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "cmd"))
	var mains []string
	for _, ent := range entries {
		if ent.IsDir() && isMainPackage(filepath.Join(dir, "cmd", ent.Name())) {
			mains = append(mains, "./cmd/"+ent.Name())
		}
	}
	switch len(mains) {
	case 0:
		return ".", "no main package found at the top or under cmd/: set main in " + appFileName
	case 1:
		return mains[0], ""
	}
	slices.Sort(mains)
	return mains[0], fmt.Sprintf("main packages: %s; took %s (set main in %s for another)", strings.Join(mains, ", "), mains[0], appFileName)
}

// isMainPackage reports whether dir holds a Go file, other than a test, of package main.
func isMainPackage(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.PackageClauseOnly)
		if err == nil && f.Name.Name == "main" {
			return true
		}
	}
	return false
}

// channelOrder is dev → staging → prod.
func channelOrder(chs []openapi.ChannelSpec) string {
	names := make([]string, len(chs))
	for i, ch := range chs {
		names[i] = ch.Name
	}
	return strings.Join(names, " → ")
}

// firstChannel is the first channel's name, "dev" when there is none.
func firstChannel(chs []openapi.ChannelSpec) string {
	if len(chs) == 0 {
		return "dev"
	}
	return chs[0].Name
}
