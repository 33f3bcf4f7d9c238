package slipway_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	kyaml "sigs.k8s.io/yaml"
)

// kubeObject is any object of the Kubernetes API.
type kubeObject interface {
	GetName() string
	GetNamespace() string
}

// kubeKinds are the kinds deploy/kubernetes may hold, each with its Go type; decoding
// into the type is what makes a misspelt field an error.
var kubeKinds = map[string]func() kubeObject{
	"v1 Namespace":             func() kubeObject { return new(corev1.Namespace) },
	"v1 ConfigMap":             func() kubeObject { return new(corev1.ConfigMap) },
	"v1 Secret":                func() kubeObject { return new(corev1.Secret) },
	"v1 Service":               func() kubeObject { return new(corev1.Service) },
	"v1 ServiceAccount":        func() kubeObject { return new(corev1.ServiceAccount) },
	"apps/v1 Deployment":       func() kubeObject { return new(appsv1.Deployment) },
	"apps/v1 StatefulSet":      func() kubeObject { return new(appsv1.StatefulSet) },
	"v1 PersistentVolumeClaim": func() kubeObject { return new(corev1.PersistentVolumeClaim) },
}

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

// TestDeployKubernetesDecoder shows that decodeKube refuses what the API server would.
func TestDeployKubernetesDecoder(t *testing.T) {
	const head = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeKube([]byte(tc.doc))
			if (err == nil) != tc.ok {
				t.Errorf("decodeKube(%q) = %v, want ok %v", tc.doc, err, tc.ok)
			}
		})
	}
}

// TestDeployKubernetesSources decodes every resource kustomization.yaml names strictly;
// it needs no kubectl.
func TestDeployKubernetesSources(t *testing.T) {
	var k struct {
		Resources []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, "deploy/kubernetes/kustomization.yaml")), &k); err != nil {
		t.Fatal(err)
	}
	if len(k.Resources) == 0 {
		t.Fatal("deploy/kubernetes/kustomization.yaml names no resources")
	}
	for _, r := range k.Resources {
		if _, err := decodeKube([]byte(readFile(t, filepath.Join("deploy/kubernetes", r)))); err != nil {
			t.Errorf("deploy/kubernetes/%s: %v", r, err)
		}
	}
}

// TestDeployKubernetes renders deploy/kubernetes as `kubectl apply -k` would, decodes every
// object strictly, and checks that the objects fit together and that deploy/README.md
// describes them. kubectl comes with this project's machines, so under CI=true its absence
// is a failure; elsewhere the test skips.
func TestDeployKubernetes(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kubectl is not installed, and CI=true: this test renders deploy/kubernetes with `kubectl kustomize`")
		}
		t.Skip("kubectl is not installed: deploy/kubernetes is not rendered (install kubectl to check it)")
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", "deploy/kubernetes")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/kubernetes: %v\n%s", err, stderr.String())
	}
	objs, err := decodeKube(out)
	if err != nil {
		t.Fatalf("kubectl kustomize deploy/kubernetes: %v", err)
	}
	c := newKubeCheck(t, objs)

	t.Run("namespace", c.namespace)
	t.Run("references", c.references)
	t.Run("services", c.servicesSelectPods)
	t.Run("slipway", c.slipway)
	t.Run("readme", c.readme)
}

// kubeCheck holds the rendered objects by kind.
type kubeCheck struct {
	objs         []kubeObject
	namespaces   []*corev1.Namespace
	configMaps   map[string]*corev1.ConfigMap
	services     []*corev1.Service
	workloads    []workload
	deployment   *appsv1.Deployment // slipway's
	adminSecret  *corev1.SecretKeySelector
	settings     map[string]string // the ConfigMap slipway's container reads
	knownSetting map[string]bool
}

// workload is a Deployment or StatefulSet: what the checks need of either.
type workload struct {
	kind, name string
	selector   map[string]string
	pod        *corev1.PodTemplateSpec
	claims     []string // volumeClaimTemplates
}

func newKubeCheck(t *testing.T, objs []kubeObject) *kubeCheck {
	c := &kubeCheck{objs: objs, configMaps: map[string]*corev1.ConfigMap{}, knownSetting: knownSettings(t)}
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			c.namespaces = append(c.namespaces, o)
		case *corev1.ConfigMap:
			c.configMaps[o.Name] = o
		case *corev1.Service:
			c.services = append(c.services, o)
		case *appsv1.Deployment:
			c.workloads = append(c.workloads, workload{"Deployment", o.Name, o.Spec.Selector.MatchLabels, &o.Spec.Template, nil})
			if o.Name == "slipway" {
				c.deployment = o
			}
		case *appsv1.StatefulSet:
			var claims []string
			for _, v := range o.Spec.VolumeClaimTemplates {
				claims = append(claims, v.Name)
			}
			c.workloads = append(c.workloads, workload{"StatefulSet", o.Name, o.Spec.Selector.MatchLabels, &o.Spec.Template, claims})
		}
	}
	if c.deployment == nil {
		t.Fatal("rendered no Deployment slipway")
	}
	return c
}

// namespace: the base makes one namespace and puts everything else in it.
func (c *kubeCheck) namespace(t *testing.T) {
	if len(c.namespaces) != 1 {
		t.Fatalf("rendered %d namespaces, want 1", len(c.namespaces))
	}
	ns := c.namespaces[0].Name
	for _, o := range c.objs {
		if _, isNS := o.(*corev1.Namespace); !isNS && o.GetNamespace() != ns {
			t.Errorf("%T %s is in namespace %q, want %q", o, o.GetName(), o.GetNamespace(), ns)
		}
	}
}

// references: every pod's selector, config maps, volumes and probe ports exist.
func (c *kubeCheck) references(t *testing.T) {
	for _, w := range c.workloads {
		if len(w.selector) == 0 || !labelsMatch(w.selector, w.pod.Labels) {
			t.Errorf("%s %s selects %v, which its pods' labels %v do not match", w.kind, w.name, w.selector, w.pod.Labels)
		}
		volumes := slices.Clone(w.claims)
		for _, v := range w.pod.Spec.Volumes {
			volumes = append(volumes, v.Name)
		}
		for _, ctr := range w.pod.Spec.Containers {
			where := w.kind + " " + w.name + " container " + ctr.Name
			for _, e := range ctr.EnvFrom {
				if r := e.ConfigMapRef; r != nil && c.configMaps[r.Name] == nil && !isTrue(r.Optional) {
					t.Errorf("%s reads ConfigMap %s, which is not rendered", where, r.Name)
				}
			}
			for _, m := range ctr.VolumeMounts {
				if !slices.Contains(volumes, m.Name) {
					t.Errorf("%s mounts volume %s, which the pod does not have (%v)", where, m.Name, volumes)
				}
			}
			for _, p := range []struct {
				name  string
				probe *corev1.Probe
			}{{"liveness", ctr.LivenessProbe}, {"readiness", ctr.ReadinessProbe}, {"startup", ctr.StartupProbe}} {
				if p.probe != nil && p.probe.HTTPGet != nil && !hasPort(ctr, p.probe.HTTPGet.Port) {
					t.Errorf("%s %s probe uses port %s, which the container does not declare", where, p.name, p.probe.HTTPGet.Port.String())
				}
			}
		}
	}
}

// servicesSelectPods: every Service selects some workload's pods, on ports their containers have.
func (c *kubeCheck) servicesSelectPods(t *testing.T) {
	for _, s := range c.services {
		var pod *corev1.PodTemplateSpec
		for _, w := range c.workloads {
			if len(s.Spec.Selector) > 0 && labelsMatch(s.Spec.Selector, w.pod.Labels) {
				pod = w.pod
			}
		}
		if pod == nil {
			t.Errorf("Service %s selects %v: no rendered pods", s.Name, s.Spec.Selector)
			continue
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			found := false
			for _, ctr := range pod.Spec.Containers {
				found = found || hasPort(ctr, target)
			}
			if !found {
				t.Errorf("Service %s port %d targets %s, which no container of its pods declares", s.Name, p.Port, target.String())
			}
		}
	}
}

// slipway: the admin token's secret is required, and the settings fit the objects: Redis
// is a rendered Service, the start-up probe outlasts the wait for Redis, the data directory
// is a volume, and replicas that share no disk keep their blobs in S3.
func (c *kubeCheck) slipway(t *testing.T) {
	d := c.deployment
	ctr := d.Spec.Template.Spec.Containers[0]
	for _, e := range ctr.Env {
		if e.Name == "SLIPWAY_ADMIN_TOKEN" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			c.adminSecret = e.ValueFrom.SecretKeyRef
		}
	}
	if c.adminSecret == nil || isTrue(c.adminSecret.Optional) {
		t.Errorf("slipway's SLIPWAY_ADMIN_TOKEN = %+v, want it from a secretKeyRef that is not optional", c.adminSecret)
	}
	for _, e := range ctr.EnvFrom {
		if r := e.SecretRef; r != nil && c.adminSecret != nil && r.Name == c.adminSecret.Name && isTrue(r.Optional) {
			t.Errorf("slipway reads the admin token's secret %s as optional", r.Name)
		}
		if r := e.ConfigMapRef; r != nil && c.configMaps[r.Name] != nil {
			c.settings = c.configMaps[r.Name].Data
		}
	}
	if c.settings == nil {
		t.Fatal("slipway's container reads no rendered ConfigMap")
	}
	for k := range c.settings {
		if !c.knownSetting[k] {
			t.Errorf("slipway's ConfigMap sets %s, which is no setting of cmd/slipway/config.go", k)
		}
	}

	u, err := url.Parse(c.settings["SLIPWAY_REDIS_URL"])
	if err != nil {
		t.Errorf("SLIPWAY_REDIS_URL: %v", err)
	} else if host, port, _ := net.SplitHostPort(u.Host); !c.hasService(host, port) {
		t.Errorf("SLIPWAY_REDIS_URL = %s: no rendered Service %s with port %s (or point it at a Redis outside)", u, host, port)
	}

	wait, err := time.ParseDuration(c.settings["SLIPWAY_REDIS_WAIT"])
	if err != nil {
		wait = 30 * time.Second // the default
	}
	if p := ctr.StartupProbe; p == nil {
		t.Error("slipway has no startupProbe: its liveness probe would restart it while it waits for Redis")
	} else if budget := time.Duration(p.PeriodSeconds*p.FailureThreshold) * time.Second; budget < wait+30*time.Second {
		t.Errorf("slipway's startupProbe allows %s, want at least SLIPWAY_REDIS_WAIT (%s) and 30s for the other start-up checks", budget, wait)
	}

	dataDir := c.settings["SLIPWAY_DATA_DIR"]
	if !slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dataDir }) {
		t.Errorf("SLIPWAY_DATA_DIR = %q is not a volume of slipway's container (its root file system is read-only)", dataDir)
	}
	if (d.Spec.Replicas == nil || *d.Spec.Replicas > 1) && c.settings["SLIPWAY_S3_BUCKET"] == "" {
		t.Error("slipway runs more than one replica but SLIPWAY_S3_BUCKET is not set: the replicas share no blob store")
	}
	if img := ctr.Image; !strings.Contains(img, "/") {
		t.Errorf("slipway's image = %q, want the images: entry of kustomization.yaml applied", img)
	}
}

// readme: deploy/README.md says how to render, how to make the admin secret the
// Deployment reads, and what each rendered object is for.
func (c *kubeCheck) readme(t *testing.T) {
	readme := readFile(t, "deploy/README.md")
	wants := []string{"kubectl kustomize deploy/kubernetes", "kubectl apply -k deploy/kubernetes"}
	if s := c.adminSecret; s != nil {
		wants = append(wants, fmt.Sprintf("create secret generic %s --from-literal=%s=", s.Name, s.Key))
	}
	for _, o := range c.objs {
		kind := strings.TrimPrefix(fmt.Sprintf("%T", o), "*v1.")
		name := o.GetName()
		if _, generated := o.(*corev1.ConfigMap); generated {
			name = regexp.MustCompile(`-[a-z0-9]{10}$`).ReplaceAllString(name, "-<hash>")
		}
		wants = append(wants, "`"+kind+"/"+name+"`")
	}
	for _, w := range wants {
		if !strings.Contains(readme, w) {
			t.Errorf("deploy/README.md does not say %s", w)
		}
	}
}

func (c *kubeCheck) hasService(name, port string) bool {
	for _, s := range c.services {
		for _, p := range s.Spec.Ports {
			if s.Name == name && fmt.Sprint(p.Port) == port {
				return true
			}
		}
	}
	return false
}

// hasPort reports whether the container declares port, by name or number.
func hasPort(ctr corev1.Container, port intstr.IntOrString) bool {
	return slices.ContainsFunc(ctr.Ports, func(p corev1.ContainerPort) bool {
		if port.Type == intstr.String {
			return p.Name == port.StrVal
		}
		return p.ContainerPort == port.IntVal
	})
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func isTrue(b *bool) bool { return b != nil && *b }
