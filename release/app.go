package release

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"
)

// App is an app's configuration as stored, with its defaults filled in.
type App struct {
	Name string
	AppConfig
	// Generation counts the changes to the configuration; it is the app's ETag.
	Generation int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// AppConfig is what a user configures for an app.
type AppConfig struct {
	// Main is the main package as a path inside the module, "." or "./cmd/x".
	Main string `json:"main"`
	// Platforms are the build targets in normal form ("linux/arm64", "linux/arm/v7").
	Platforms []string `json:"platforms"`
	// BaseImage is a registry reference, or empty for the built-in base.
	BaseImage string `json:"base_image"`
	// Ldflags is a template for linker flags; see gobuild.RenderLdflags.
	Ldflags string `json:"ldflags"`
	// Channels are the release channels, in order.
	Channels []Channel `json:"channels"`
	// AutoPromote sends every new release to the first channel.
	AutoPromote bool `json:"auto_promote,omitempty"`
	// Public lets anyone pull the app's images from the registry.
	Public bool `json:"public,omitempty"`
}

// Channel is one release channel of an app and its promotion policy.
type Channel struct {
	Name string `json:"name"`
	// From names an earlier channel a release must have been in before this one.
	From string `json:"from,omitempty"`
	// Gates are what a release must meet to enter the channel; nil for none.
	Gates *Gates `json:"gates,omitempty"`
	// AutoPromote moves a release from From into this channel as soon as every gate
	// passes, unless the channel is pinned (a rollback pins it).
	AutoPromote bool `json:"auto_promote,omitempty"`
}

// AppSpec is a request to configure an app: a nil field takes its default.
type AppSpec struct {
	Main      *string
	Platforms *[]string
	BaseImage *string
	Ldflags   *string
	Channels  *[]Channel
	// AutoPromote and Public default to false.
	AutoPromote *bool
	Public      *bool
}

// The defaults of an app's configuration.
var (
	DefaultMain      = "."
	DefaultPlatforms = []string{"linux/amd64", "linux/arm64"}
	DefaultLdflags   = "-X main.version={{.Version}}"
	DefaultChannels  = []Channel{{Name: "dev"}, {Name: "staging", From: "dev"}, {Name: "prod", From: "staging"}}
)

// Limits on an app's configuration.
const (
	MaxPlatforms = 32
	MaxChannels  = 16
	maxMainLen   = 256
)

// BuildChecker checks the build settings of an app against what the builder can do;
// builder.AppChecker implements it.
type BuildChecker interface {
	// CheckPlatform returns the platform in normal form, or why it cannot be built.
	CheckPlatform(p string) (string, error)
	CheckLdflags(tmpl string) error
	CheckBaseImage(ref string) error
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidateName checks that name is a DNS label: lowercase letters, digits and '-',
// starting and ending with a letter or digit, at most 63 characters.
func ValidateName(name string) error {
	if !dnsLabel.MatchString(name) {
		return fmt.Errorf("%q is not a DNS label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)", name)
	}
	return nil
}

// Resolve fills in the defaults of spec and checks every field, returning all problems
// at once as a *ValidationError.
func (spec AppSpec) Resolve(check BuildChecker) (AppConfig, error) {
	var verr ValidationError
	cfg := AppConfig{
		Main:      DefaultMain,
		Platforms: DefaultPlatforms,
		Ldflags:   DefaultLdflags,
		Channels:  DefaultChannels,
	}
	if spec.Main != nil {
		m, err := normalizeMain(*spec.Main)
		if err != nil {
			verr.Add("main", err.Error())
		}
		cfg.Main = m
	}
	if spec.Platforms != nil {
		cfg.Platforms = resolvePlatforms(*spec.Platforms, check, &verr)
	}
	if spec.BaseImage != nil {
		cfg.BaseImage = strings.TrimSpace(*spec.BaseImage)
		if err := check.CheckBaseImage(cfg.BaseImage); err != nil {
			verr.Add("base_image", err.Error())
		}
	}
	if spec.Ldflags != nil {
		cfg.Ldflags = *spec.Ldflags
		if err := check.CheckLdflags(cfg.Ldflags); err != nil {
			verr.Add("ldflags", err.Error())
		}
	}
	if spec.Channels != nil {
		cfg.Channels = *spec.Channels
		validateChannels(cfg.Channels, &verr)
	}
	if spec.AutoPromote != nil {
		cfg.AutoPromote = *spec.AutoPromote
	}
	if spec.Public != nil {
		cfg.Public = *spec.Public
	}
	return cfg, verr.Err()
}

func resolvePlatforms(in []string, check BuildChecker, verr *ValidationError) []string {
	if len(in) == 0 {
		verr.Add("platforms", "at least one platform is needed, such as \"linux/amd64\"")
		return nil
	}
	if len(in) > MaxPlatforms {
		verr.Add("platforms", fmt.Sprintf("at most %d platforms", MaxPlatforms))
		return nil
	}
	out := make([]string, 0, len(in))
	seen := map[string]int{}
	for i, p := range in {
		field := fmt.Sprintf("platforms[%d]", i)
		norm, err := check.CheckPlatform(p)
		if err != nil {
			verr.Add(field, err.Error())
			continue
		}
		if j, dup := seen[norm]; dup {
			verr.Add(field, fmt.Sprintf("%s repeats platforms[%d]", p, j))
			continue
		}
		seen[norm] = i
		out = append(out, norm)
	}
	return out
}

func validateChannels(chs []Channel, verr *ValidationError) {
	if len(chs) == 0 {
		verr.Add("channels", "at least one channel is needed, such as {\"name\": \"prod\"}")
		return
	}
	if len(chs) > MaxChannels {
		verr.Add("channels", fmt.Sprintf("at most %d channels", MaxChannels))
		return
	}
	index := map[string]int{}
	for i, ch := range chs {
		field := fmt.Sprintf("channels[%d]", i)
		if err := ValidateName(ch.Name); err != nil {
			verr.Add(field+".name", err.Error())
		} else if strings.HasPrefix(ch.Name, "build-") {
			verr.Add(field+".name", fmt.Sprintf("%q: names starting with \"build-\" are reserved for build tags in the registry", ch.Name))
		} else if j, dup := index[ch.Name]; dup {
			verr.Add(field+".name", fmt.Sprintf("%q repeats channels[%d]", ch.Name, j))
		}
		if ch.From != "" {
			if _, earlier := index[ch.From]; ch.From == ch.Name {
				verr.Add(field+".from", fmt.Sprintf("channel %q cannot come from itself", ch.Name))
			} else if !earlier {
				verr.Add(field+".from", fmt.Sprintf("%q is not an earlier channel; from must name a channel listed before %q", ch.From, ch.Name))
			}
		}
		validateGates(field, ch, verr)
		if _, dup := index[ch.Name]; !dup {
			index[ch.Name] = i
		}
	}
}

// normalizeMain checks a main package path and returns it as "." or "./a/b".
func normalizeMain(m string) (string, error) {
	if m == "" || m == "." || m == "./" {
		return ".", nil
	}
	if len(m) > maxMainLen {
		return "", fmt.Errorf("longer than %d bytes", maxMainLen)
	}
	if strings.HasPrefix(m, "/") {
		return "", fmt.Errorf("%q is absolute; give a path inside the module, such as ./cmd/hello", m)
	}
	rel := strings.TrimSuffix(strings.TrimPrefix(m, "./"), "/")
	for seg := range strings.SplitSeq(rel, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".") {
			return "", fmt.Errorf("%q: segment %q is not allowed; give a path inside the module, such as ./cmd/hello", m, seg)
		}
		for _, r := range seg {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
				return "", fmt.Errorf("%q: character %q is not allowed in a package path", m, r)
			}
		}
	}
	return "./" + path.Clean(rel), nil
}
