package webhook

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenSSLRecipe runs the shell recipe of the package documentation and
// docs/webhooks.md: its output must be the v1 that Sign makes.
func TestOpenSSLRecipe(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	body := []byte("{\"id\":\"01JD3Y7Q9V6K2M8N4P5R7S9T1W\",\"data\":{\"reason\":\"a line\\nand $HOME\"}}\n")
	file := filepath.Join(t.TempDir(), "body.json")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := newSecret()
	at := time.Unix(1767225600, 0)
	cmd := exec.Command("sh", "-c", `t=1767225600
{ printf '%s.' "$t"; cat body.json; } |
  openssl dgst -sha256 -hmac "$SLIPWAY_WEBHOOK_SECRET" | awk '{print $NF}'`)
	cmd.Dir = filepath.Dir(file)
	cmd.Env = append(os.Environ(), "SLIPWAY_WEBHOOK_SECRET="+secret)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("recipe: %v\n%s", err, out)
	}
	want := strings.TrimPrefix(Sign([]string{secret}, at, body), "t=1767225600,v1=")
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("recipe printed %s, want %s", got, want)
	}
}
