package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "sigs.k8s.io/json"
	kyaml "sigs.k8s.io/yaml"
)

// kubeObject is any object of the Kubernetes API, KEDA's included.
type kubeObject interface {
	GetName() string
	GetNamespace() string
	GetObjectKind() schema.ObjectKind
}

// kubeKinds are the kinds kubernetes/ may hold, each with its Go type; decoding into the
// type is what makes a misspelt field an error.
var kubeKinds = map[string]func() kubeObject{
	"v1 Namespace":                           func() kubeObject { return new(corev1.Namespace) },
	"v1 ConfigMap":                           func() kubeObject { return new(corev1.ConfigMap) },
	"v1 Secret":                              func() kubeObject { return new(corev1.Secret) },
	"v1 Service":                             func() kubeObject { return new(corev1.Service) },
	"v1 ServiceAccount":                      func() kubeObject { return new(corev1.ServiceAccount) },
	"v1 PersistentVolumeClaim":               func() kubeObject { return new(corev1.PersistentVolumeClaim) },
	"apps/v1 Deployment":                     func() kubeObject { return new(appsv1.Deployment) },
	"apps/v1 StatefulSet":                    func() kubeObject { return new(appsv1.StatefulSet) },
	"autoscaling/v2 HorizontalPodAutoscaler": func() kubeObject { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"policy/v1 PodDisruptionBudget":          func() kubeObject { return new(policyv1.PodDisruptionBudget) },
	"networking.k8s.io/v1 NetworkPolicy":     func() kubeObject { return new(networkingv1.NetworkPolicy) },
	"keda.sh/v1alpha1 ScaledJob":             func() kubeObject { return new(kedav1alpha1.ScaledJob) },
	"keda.sh/v1alpha1 ScaledObject":          func() kubeObject { return new(kedav1alpha1.ScaledObject) },
	"keda.sh/v1alpha1 TriggerAuthentication": func() kubeObject { return new(kedav1alpha1.TriggerAuthentication) },
}

// kindOf is the object's kind, as its document named it.
func kindOf(o kubeObject) string { return o.GetObjectKind().GroupVersionKind().Kind }

// decodeKube decodes a stream of YAML documents into Kubernetes objects as strictly as
// the API server's fieldValidation=Strict: YAML 1.1 as kubectl reads it, no duplicate
// keys, field names matched case-sensitively, no unknown fields, values of the right type.
func decodeKube(data []byte) ([]kubeObject, error) {
	var objs []kubeObject
	for i, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(data), -1) {
		j, err := kyaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if string(j) == "null" {
			continue // only comments
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &meta); err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		newObj, ok := kubeKinds[meta.APIVersion+" "+meta.Kind]
		if !ok {
			return nil, fmt.Errorf("document %d: apiVersion %q kind %q is not in kubeKinds; add its Go type", i+1, meta.APIVersion, meta.Kind)
		}
		obj := newObj()
		strict, err := kjson.UnmarshalStrict(j, obj)
		if err == nil {
			err = errors.Join(strict...)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", meta.Kind, obj.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// TestKubernetesDecoder shows that decodeKube refuses what the API server would, for the
// Kubernetes API's kinds and KEDA's alike.
func TestKubernetesDecoder(t *testing.T) {
	const head = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
	const job = "apiVersion: keda.sh/v1alpha1\nkind: ScaledJob\nmetadata: {name: j}\n"
	for _, tc := range []struct {
		name, doc string
		ok        bool
	}{
		{"valid", head + "spec: {replicas: 2}\n", true},
		{"misspelt field", head + "spec: {replica: 2}\n", false},
		{"field in the wrong case", head + "spec: {Replicas: 2}\n", false},
		{"field at the wrong level", head + "spec: {containers: []}\n", false},
		{"duplicate key", head + "spec: {replicas: 2, replicas: 3}\n", false},
		{"wrong type", head + "spec: {replicas: two}\n", false},
		{"bare yes as a string (YAML 1.1 makes it a boolean)", head + "spec: {template: {spec: {containers: [{name: c, args: [yes]}]}}}\n", false},
		{"unknown kind", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n", false},
		{"two documents", "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns}\n---\n# only a comment\n---\n" + head, true},
		{"ScaledJob", job + "spec: {minReplicaCount: 0, jobTargetRef: {backoffLimit: 0}, triggers: [{type: redis-streams, metadata: {lagCount: '1'}}]}\n", true},
		{"ScaledJob with a ScaledObject's field", job + "spec: {minReplicas: 0, jobTargetRef: {}, triggers: []}\n", false},
		{"ScaledJob with a misspelt field of its Job", job + "spec: {jobTargetRef: {backofLimit: 0}, triggers: []}\n", false},
		{"trigger metadata that is not a string", job + "spec: {jobTargetRef: {}, triggers: [{type: redis-streams, metadata: {lagCount: 1}}]}\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeKube([]byte(tc.doc))
			if (err == nil) != tc.ok {
				t.Errorf("decodeKube(%q) = %v, want ok %v", tc.doc, err, tc.ok)
			}
		})
	}
}

// TestKubernetesSources decodes every resource file a kustomization.yaml under kubernetes/
// names strictly, and checks that the directories and patches it names exist; it needs
// no kubectl.
func TestKubernetesSources(t *testing.T) {
	var kustomizations []string
	err := filepath.WalkDir("kubernetes", func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "kustomization.yaml" {
			kustomizations = append(kustomizations, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(kustomizations) < 5 {
		t.Fatalf("found kustomizations %v, want kubernetes/, its base and redis, and the overlays", kustomizations)
	}
	for _, k := range kustomizations {
		var kust struct {
			Resources  []string `json:"resources"`
			Components []string `json:"components"`
			Patches    []struct {
				Path string `json:"path"`
			} `json:"patches"`
		}
		if err := kyaml.Unmarshal([]byte(readFile(t, k)), &kust); err != nil {
			t.Errorf("%s: %v", k, err)
			continue
		}
		dir := filepath.Dir(k)
		for _, r := range slices.Concat(kust.Resources, kust.Components) {
			p := filepath.Join(dir, r)
			fi, err := os.Stat(p)
			switch {
			case err != nil:
				t.Errorf("%s names %s: %v", k, r, err)
			case fi.IsDir():
				if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
					t.Errorf("%s names the directory %s, which has no kustomization.yaml", k, r)
				}
			default:
				if _, err := decodeKube([]byte(readFile(t, p))); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
		}
		for _, p := range kust.Patches {
			if p.Path == "" {
				continue
			}
			if _, err := os.Stat(filepath.Join(dir, p.Path)); err != nil {
				t.Errorf("%s names the patch %s: %v", k, p.Path, err)
			}
		}
	}
}

// kubectlPath is kubectl, or the test skips: kubectl comes with this project's machines,
// so under CI=true its absence is a failure.
func kubectlPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kubectl is not installed, and CI=true: this test renders kubernetes/ with `kubectl kustomize`")
		}
		t.Skip("kubectl is not installed: kubernetes/ is not rendered (install kubectl to check it)")
	}
	return p
}

var renders struct {
	sync.Mutex
	out map[string][]byte
}

// render returns what `kubectl kustomize dir` renders, rendering each directory once.
func render(t *testing.T, dir string) []byte {
	t.Helper()
	kubectl := kubectlPath(t)
	renders.Lock()
	defer renders.Unlock()
	if out, ok := renders.out[dir]; ok {
		return out
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	if renders.out == nil {
		renders.out = map[string][]byte{}
	}
	renders.out[dir] = out
	return out
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// knownSettings are the SLIPWAY_* variables ../cmd/slipway/config.go reads.
func knownSettings(t *testing.T) map[string]bool {
	t.Helper()
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`env: "(SLIPWAY_[A-Z0-9_]+)"`).FindAllStringSubmatch(readFile(t, "../cmd/slipway/config.go"), -1) {
		known[m[1]] = true
	}
	if len(known) == 0 {
		t.Fatal("found no settings in ../cmd/slipway/config.go")
	}
	return known
}

// buildQueue is the build queue's stream and consumer group, as ../store/paths.go names them.
func buildQueue(t *testing.T) (stream, group string) {
	t.Helper()
	paths := readFile(t, "../store/paths.go")
	s := regexp.MustCompile(`BuildQueueKey\s*=\s*"([^"]+)"`).FindStringSubmatch(paths)
	g := regexp.MustCompile(`BuildQueueGroup\s*=\s*"([^"]+)"`).FindStringSubmatch(paths)
	if s == nil || g == nil {
		t.Fatal("../store/paths.go names no BuildQueueKey and BuildQueueGroup")
	}
	return s[1], g[1]
}

// trimHash names a generated ConfigMap as deploy/README.md does: slipway-<hash>.
func trimHash(name string) string {
	return regexp.MustCompile(`-[a-z0-9]{10}$`).ReplaceAllString(name, "-<hash>")
}

// contains reports whether s holds sub, ignoring runs of white space (Markdown wraps lines).
func contains(s, sub string) bool {
	squash := func(s string) string { return strings.Join(strings.Fields(s), " ") }
	return strings.Contains(squash(s), squash(sub))
}
