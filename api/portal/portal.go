package portal

import (
	"embed"
	"io/fs"
)

//go:embed templates/*.html
var templates embed.FS

//go:embed assets
var assets embed.FS

// Templates are the pages' html/template sources: layout.html and one file a page.
func Templates() fs.FS { return templates }

// Assets are the stylesheet, the script and the icon, served under /ui/assets/.
func Assets() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}

// Diff is what moving a channel from one release to another changes, in lines a person
// reads before confirming.
type Diff struct {
	// Summary is one sentence, such as "3 commits, 2 modules upgraded".
	Summary string
	// Changes are the changes, one a line, grouped by Kind ("commit", "module",
	// "platform", "config"...).
	Changes []Change
}

// Change is one line of a Diff.
type Change struct {
	Kind   string
	Name   string
	Before string
	After  string
}
