package deploy

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// overlays are the environments of kubernetes/overlays.
var overlays = []string{"dev", "staging", "prod"}

// TestKubernetes renders every overlay as `kubectl apply -k` would, decodes every object
// strictly, and checks that the objects fit together, that they are what deploy/README.md
// promises, and that they keep slipway's settings and secrets where they belong.
func TestKubernetes(t *testing.T) {
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			k := renderOverlay(t, o)
			t.Run("namespace", k.namespace)
			t.Run("references", k.references)
			t.Run("services", k.servicesSelectPods)
			t.Run("service accounts", k.serviceAccounts)
			t.Run("resources", k.resources)
			t.Run("settings", k.settings)
			t.Run("redis", k.redis)
			t.Run("api", k.apiServer)
			t.Run("autoscaling", k.autoscaling)
			t.Run("disruption budget", k.disruptionBudget)
			t.Run("workers", k.workers)
			t.Run("scaler", k.scaler)
			t.Run("network policies", k.networkPolicies)
			t.Run("no secrets inline", k.noSecretsInline)
			t.Run("readme", k.readme)
		})
	}
}

// TestKubernetesOverlays checks that the overlays differ where an environment does
// (replicas, log level, limits, Redis and S3) and not in what they run, and that
// kubernetes/ itself renders the dev overlay.
func TestKubernetesOverlays(t *testing.T) {
	type facts struct {
		replicas, limits, redis, s3, logLevel, images string
	}
	got := map[string]facts{}
	for _, o := range overlays {
		k := renderOverlay(t, o)
		if k.hpa == nil || k.job == nil {
			t.Fatalf("overlay %s renders no HorizontalPodAutoscaler or ScaledJob", o)
		}
		var images []string
		for _, w := range k.workloads {
			if w.name != "redis" {
				for _, c := range w.pod.Spec.Containers {
					images = append(images, w.name+"="+c.Image)
				}
			}
		}
		api, worker := k.apiEnv(t), k.workerEnv(t)
		got[o] = facts{
			replicas: fmt.Sprintf("API %d-%d, workers up to %d", *k.hpa.Spec.MinReplicas, k.hpa.Spec.MaxReplicas, *k.job.Spec.MaxReplicaCount),
			limits: fmt.Sprintf("API %s, workers %s", limitsOf(k.api.Spec.Template.Spec.Containers[0]),
				limitsOf(k.job.Spec.JobTargetRef.Template.Spec.Containers[0])),
			redis:    worker["SLIPWAY_REDIS_URL"].value,
			s3:       api["SLIPWAY_S3_ENDPOINT"].value + " " + api["SLIPWAY_S3_BUCKET"].value,
			logLevel: api["SLIPWAY_LOG_LEVEL"].value,
			images:   strings.Join(images, " "),
		}
	}
	for _, f := range []struct {
		name     string
		get      func(facts) string
		distinct bool // every overlay its own; else not all the same
	}{
		{"replicas", func(f facts) string { return f.replicas }, true},
		{"limits", func(f facts) string { return f.limits }, true},
		{"Redis", func(f facts) string { return f.redis }, true},
		{"S3", func(f facts) string { return f.s3 }, true},
		{"log level", func(f facts) string { return f.logLevel }, false},
	} {
		seen := map[string]string{}
		for _, o := range overlays {
			v := f.get(got[o])
			if v == "" || strings.TrimSpace(v) == "" {
				t.Errorf("overlay %s sets no %s", o, f.name)
			}
			if other, dup := seen[v]; dup && f.distinct {
				t.Errorf("overlays %s and %s have the same %s (%s); each environment sets its own", other, o, f.name, v)
			}
			seen[v] = o
		}
		if len(seen) == 1 {
			t.Errorf("every overlay has the same %s (%s)", f.name, f.get(got[overlays[0]]))
		}
	}
	for _, o := range overlays[1:] {
		if got[o].images != got[overlays[0]].images {
			t.Errorf("overlay %s runs %s, overlay %s %s: the overlays differ in settings, not in what they run", o, got[o].images, overlays[0], got[overlays[0]].images)
		}
	}
	if top, dev := string(render(t, "kubernetes")), string(render(t, "kubernetes/overlays/dev")); top != dev {
		t.Error("kubectl kustomize deploy/kubernetes renders something else than overlays/dev, which deploy/README.md says it renders")
	}
}

func limitsOf(c corev1.Container) string {
	return c.Resources.Limits.Cpu().String() + " CPU " + c.Resources.Limits.Memory().String()
}

// kube holds one overlay's rendered objects by kind.
type kube struct {
	overlay      string
	objs         []kubeObject
	namespaces   []*corev1.Namespace
	configMaps   map[string]*corev1.ConfigMap
	secrets      []*corev1.Secret
	services     []*corev1.Service
	accounts     map[string]*corev1.ServiceAccount
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	policies     []*networkingv1.NetworkPolicy
	triggerAuths map[string]*kedav1alpha1.TriggerAuthentication
	workloads    []workload
	api          *appsv1.Deployment                     // the Deployment slipway
	hpa          *autoscalingv2.HorizontalPodAutoscaler // the one that scales it
	job          *kedav1alpha1.ScaledJob                // the workers
}

// workload is a Deployment, StatefulSet or ScaledJob: what the checks need of any of them.
type workload struct {
	kind, name string
	selector   map[string]string // none for a ScaledJob: its Jobs choose their own
	pod        *corev1.PodTemplateSpec
	claims     []string // volumeClaimTemplates
}

func renderOverlay(t *testing.T, overlay string) *kube {
	t.Helper()
	dir := "kubernetes/overlays/" + overlay
	objs, err := decodeKube(render(t, dir))
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	k := &kube{overlay: overlay, objs: objs, configMaps: map[string]*corev1.ConfigMap{},
		accounts: map[string]*corev1.ServiceAccount{}, triggerAuths: map[string]*kedav1alpha1.TriggerAuthentication{}}
	var jobs []*kedav1alpha1.ScaledJob
	for _, o := range objs {
		switch o := o.(type) {
		case *corev1.Namespace:
			k.namespaces = append(k.namespaces, o)
		case *corev1.ConfigMap:
			k.configMaps[o.Name] = o
		case *corev1.Secret:
			k.secrets = append(k.secrets, o)
		case *corev1.Service:
			k.services = append(k.services, o)
		case *corev1.ServiceAccount:
			k.accounts[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			k.hpas = append(k.hpas, o)
		case *policyv1.PodDisruptionBudget:
			k.pdbs = append(k.pdbs, o)
		case *networkingv1.NetworkPolicy:
			k.policies = append(k.policies, o)
		case *kedav1alpha1.TriggerAuthentication:
			k.triggerAuths[o.Name] = o
		case *kedav1alpha1.ScaledJob:
			jobs = append(jobs, o)
			if o.Spec.JobTargetRef != nil {
				k.workloads = append(k.workloads, workload{"ScaledJob", o.Name, nil, &o.Spec.JobTargetRef.Template, nil})
			}
		case *appsv1.Deployment:
			k.workloads = append(k.workloads, workload{"Deployment", o.Name, o.Spec.Selector.MatchLabels, &o.Spec.Template, nil})
			if o.Name == "slipway" {
				k.api = o
			}
		case *appsv1.StatefulSet:
			var claims []string
			for _, v := range o.Spec.VolumeClaimTemplates {
				claims = append(claims, v.Name)
			}
			k.workloads = append(k.workloads, workload{"StatefulSet", o.Name, o.Spec.Selector.MatchLabels, &o.Spec.Template, claims})
		}
	}
	if k.api == nil || len(k.api.Spec.Template.Spec.Containers) == 0 {
		t.Fatalf("%s renders no Deployment slipway with a container", dir)
	}
	if len(jobs) != 1 || jobs[0].Spec.JobTargetRef == nil || len(jobs[0].Spec.JobTargetRef.Template.Spec.Containers) == 0 {
		t.Fatalf("%s renders %d ScaledJobs, want one, for the build workers, with a container", dir, len(jobs))
	}
	k.job = jobs[0]
	for _, h := range k.hpas {
		if r := h.Spec.ScaleTargetRef; r.Kind == "Deployment" && r.Name == k.api.Name {
			k.hpa = h
		}
	}
	return k
}

// namespace: one namespace, and everything else in it.
func (k *kube) namespace(t *testing.T) {
	if len(k.namespaces) != 1 {
		t.Fatalf("rendered %d namespaces, want 1", len(k.namespaces))
	}
	ns := k.namespaces[0].Name
	for _, o := range k.objs {
		if _, isNS := o.(*corev1.Namespace); !isNS && o.GetNamespace() != ns {
			t.Errorf("%s %s is in namespace %q, want %q", kindOf(o), o.GetName(), o.GetNamespace(), ns)
		}
	}
}

// references: every workload's selector, config maps, volumes and probe ports exist.
func (k *kube) references(t *testing.T) {
	for _, w := range k.workloads {
		if w.kind != "ScaledJob" && (len(w.selector) == 0 || !labelsMatch(w.selector, w.pod.Labels)) {
			t.Errorf("%s %s selects %v, which its pods' labels %v do not match", w.kind, w.name, w.selector, w.pod.Labels)
		}
		volumes := slices.Clone(w.claims)
		for _, v := range w.pod.Spec.Volumes {
			volumes = append(volumes, v.Name)
		}
		for _, ctr := range w.pod.Spec.Containers {
			where := w.kind + " " + w.name + " container " + ctr.Name
			for _, e := range ctr.EnvFrom {
				if r := e.ConfigMapRef; r != nil && k.configMaps[r.Name] == nil && !isTrue(r.Optional) {
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

// servicesSelectPods: every Service selects some workload's pods, on ports their containers
// have, and slipway's selects the API's pods alone.
func (k *kube) servicesSelectPods(t *testing.T) {
	for _, s := range k.services {
		var pods []workload
		for _, w := range k.workloads {
			if len(s.Spec.Selector) > 0 && labelsMatch(s.Spec.Selector, w.pod.Labels) {
				pods = append(pods, w)
			}
		}
		if len(pods) != 1 {
			t.Errorf("Service %s selects %v: the pods of %d workloads, want one", s.Name, s.Spec.Selector, len(pods))
			continue
		}
		for _, p := range s.Spec.Ports {
			target := p.TargetPort
			if target.Type == intstr.Int && target.IntVal == 0 {
				target = intstr.FromInt32(p.Port)
			}
			if !slices.ContainsFunc(pods[0].pod.Spec.Containers, func(c corev1.Container) bool { return hasPort(c, target) }) {
				t.Errorf("Service %s port %d targets %s, which no container of its pods declares", s.Name, p.Port, target.String())
			}
		}
	}
}

// serviceAccounts: slipway's pods run as service accounts of their own that hold no token.
func (k *kube) serviceAccounts(t *testing.T) {
	for _, w := range k.slipwayPods() {
		spec := w.pod.Spec
		sa := k.accounts[spec.ServiceAccountName]
		switch {
		case spec.ServiceAccountName == "" || spec.ServiceAccountName == "default":
			t.Errorf("%s %s runs as the namespace's default service account; give it its own", w.kind, w.name)
		case sa == nil:
			t.Errorf("%s %s runs as service account %s, which is not rendered", w.kind, w.name, spec.ServiceAccountName)
		case sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken:
			t.Errorf("ServiceAccount %s mounts its token into pods; slipway calls no Kubernetes API (automountServiceAccountToken: false)", sa.Name)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Errorf("%s %s's pods mount a service account token; slipway calls no Kubernetes API", w.kind, w.name)
		}
	}
}

// resources: every container asks for CPU and memory and is bounded in both.
func (k *kube) resources(t *testing.T) {
	for _, w := range k.workloads {
		for _, c := range w.pod.Spec.Containers {
			r := c.Resources
			for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := r.Requests[name]
				lim, hasLim := r.Limits[name]
				switch {
				case !hasReq || req.IsZero():
					t.Errorf("%s %s container %s requests no %s", w.kind, w.name, c.Name, name)
				case !hasLim || lim.IsZero():
					t.Errorf("%s %s container %s has no %s limit", w.kind, w.name, c.Name, name)
				case req.Cmp(lim) > 0:
					t.Errorf("%s %s container %s requests %s %s, over its limit %s", w.kind, w.name, c.Name, req.String(), name, lim.String())
				}
			}
		}
	}
}

// settings: the ConfigMap holds settings config.go reads, and the API's and the workers'
// environments agree on where everything is.
func (k *kube) settings(t *testing.T) {
	known := knownSettings(t)
	for _, w := range k.slipwayPods() {
		for _, e := range w.pod.Spec.Containers[0].EnvFrom {
			cm := e.ConfigMapRef
			if cm == nil || k.configMaps[cm.Name] == nil {
				continue
			}
			for key := range k.configMaps[cm.Name].Data {
				if !known[key] {
					t.Errorf("ConfigMap %s sets %s, which is no setting of cmd/slipway/config.go", trimHash(cm.Name), key)
				}
			}
			if _, ok := k.configMaps[cm.Name].Data["SLIPWAY_REDIS_URL"]; ok {
				t.Errorf("ConfigMap %s sets SLIPWAY_REDIS_URL, which the containers' own env overrides", trimHash(cm.Name))
			}
		}
	}
	api, worker := k.apiEnv(t), k.workerEnv(t)
	for _, name := range []string{"SLIPWAY_REDIS_URL", "SLIPWAY_REDIS_CLUSTER", "SLIPWAY_S3_BUCKET", "SLIPWAY_S3_ENDPOINT",
		"SLIPWAY_S3_REGION", "SLIPWAY_S3_PATH_STYLE", "SLIPWAY_DATA_DIR"} {
		if api[name].value != worker[name].value {
			t.Errorf("the API's %s = %q, the workers' %q: they share Redis, the blob store and the layout", name, api[name].value, worker[name].value)
		}
	}
	if api["SLIPWAY_S3_BUCKET"].value == "" {
		t.Error("SLIPWAY_S3_BUCKET is not set: the API and the workers share no disk, so blobs must be in S3")
	}
	if a, w := k.api.Spec.Template.Spec.Containers[0].Image, k.job.Spec.JobTargetRef.Template.Spec.Containers[0].Image; a != w || !strings.Contains(a, "/") {
		t.Errorf("the API runs %q and the workers %q, want the one image the images: entry of kustomization.yaml names", a, w)
	}
}

// redis: the Redis URL is one slipway reads, in the form SLIPWAY_REDIS_CLUSTER asks for,
// and a Redis in the namespace is a rendered Service.
func (k *kube) redis(t *testing.T) {
	env := k.workerEnv(t)
	r, err := parseRedisURL(env["SLIPWAY_REDIS_URL"].value)
	if err != nil {
		t.Fatalf("SLIPWAY_REDIS_URL: %v", err)
	}
	cluster := env["SLIPWAY_REDIS_CLUSTER"].value == "true"
	if !cluster && len(r.addrs) > 1 {
		t.Errorf("SLIPWAY_REDIS_URL names %d nodes but SLIPWAY_REDIS_CLUSTER is not true", len(r.addrs))
	}
	if cluster && r.db != 0 {
		t.Errorf("SLIPWAY_REDIS_URL names database %d of a Redis Cluster, which has only 0", r.db)
	}
	for _, a := range r.addrs {
		host, port, _ := net.SplitHostPort(a)
		if !strings.Contains(host, ".") && !k.hasService(host, port) {
			t.Errorf("SLIPWAY_REDIS_URL names %s: no rendered Service %s with port %s (or point it at a Redis outside)", a, host, port)
		}
	}
	for _, w := range k.workloads {
		if w.name != "redis" {
			continue
		}
		img := w.pod.Spec.Containers[0].Image
		_, tag, _ := strings.Cut(img, ":")
		if major, _, _ := strings.Cut(tag, "."); major < "7" || len(major) != 1 {
			t.Errorf("Redis runs %s; KEDA's lagCount reads XINFO GROUPS' lag, which needs Redis 7 or later", img)
		}
	}
}

// apiServer: the Deployment slipway serves the API with no build worker in-process, with
// probes on /healthz and /readyz, the admin token from a secret it requires, and state
// on volumes.
func (k *kube) apiServer(t *testing.T) {
	d := k.api
	ctr := d.Spec.Template.Spec.Containers[0]
	env := k.apiEnv(t)
	if first(ctr.Args) != "serve" {
		t.Errorf("slipway's args = %v, want serve", ctr.Args)
	}
	if w := setting(ctr.Args, env, "workers", "SLIPWAY_WORKERS", "1"); w != "0" {
		t.Errorf("slipway serve runs %s build workers in-process; the ScaledJob's workers build, so want --workers 0", w)
	}
	if w := setting(ctr.Args, env, "webhook-concurrency", "SLIPWAY_WEBHOOK_CONCURRENCY", "8"); w == "0" {
		t.Error("slipway serve delivers no webhooks (--webhook-concurrency 0), and the workers, scaled to zero, do not either")
	}
	if p := ctr.ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/readyz" {
		t.Errorf("slipway's readinessProbe = %+v, want GET /readyz (Redis and the blob store reachable)", p)
	}
	if p := ctr.LivenessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
		t.Errorf("slipway's livenessProbe = %+v, want GET /healthz", p)
	}
	admin := env["SLIPWAY_ADMIN_TOKEN"].secret
	if admin == nil || isTrue(admin.Optional) {
		t.Errorf("slipway's SLIPWAY_ADMIN_TOKEN = %+v, want it from a secretKeyRef that is not optional", admin)
	}
	wait, err := time.ParseDuration(env["SLIPWAY_REDIS_WAIT"].value)
	if err != nil {
		wait = 30 * time.Second // the default
	}
	if p := ctr.StartupProbe; p == nil {
		t.Error("slipway has no startupProbe: its liveness probe would restart it while it waits for Redis")
	} else if budget := time.Duration(p.PeriodSeconds*p.FailureThreshold) * time.Second; budget < wait+30*time.Second {
		t.Errorf("slipway's startupProbe allows %s, want at least SLIPWAY_REDIS_WAIT (%s) and 30s for the other start-up checks", budget, wait)
	}
	shutdown, err := time.ParseDuration(env["SLIPWAY_SHUTDOWN_TIMEOUT"].value)
	if err != nil {
		shutdown = 20 * time.Second // the default
	}
	if g := gracePeriod(d.Spec.Template.Spec); g <= shutdown {
		t.Errorf("slipway's terminationGracePeriodSeconds is %s, want more than SLIPWAY_SHUTDOWN_TIMEOUT (%s)", g, shutdown)
	}
	if dir := env["SLIPWAY_DATA_DIR"].value; !slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir }) {
		t.Errorf("SLIPWAY_DATA_DIR = %q is not a volume of slipway's container (its root file system is read-only)", dir)
	}
	if k.hpa != nil && d.Spec.Replicas != nil {
		t.Errorf("Deployment slipway sets replicas: %d, which every apply would reset under its HorizontalPodAutoscaler", *d.Spec.Replicas)
	}
}

// autoscaling: a HorizontalPodAutoscaler scales the API on CPU, which its pods request.
func (k *kube) autoscaling(t *testing.T) {
	h := k.hpa
	if h == nil {
		t.Fatal("no HorizontalPodAutoscaler targets Deployment slipway")
	}
	if r := h.Spec.ScaleTargetRef; r.APIVersion != "apps/v1" {
		t.Errorf("HorizontalPodAutoscaler %s targets %s %s, want apiVersion apps/v1", h.Name, r.APIVersion, r.Kind)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("HorizontalPodAutoscaler %s scales from %s to %d, want at least one replica and max ≥ min", h.Name, deref(h.Spec.MinReplicas), h.Spec.MaxReplicas)
	}
	onCPU := slices.ContainsFunc(h.Spec.Metrics, func(m autoscalingv2.MetricSpec) bool {
		return m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil
	})
	if !onCPU {
		t.Errorf("HorizontalPodAutoscaler %s does not scale on the CPU utilization of its pods", h.Name)
	}
}

// disruptionBudget: a PodDisruptionBudget covers the API's pods and no others.
func (k *kube) disruptionBudget(t *testing.T) {
	var found bool
	for _, p := range k.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err != nil {
			t.Errorf("PodDisruptionBudget %s: %v", p.Name, err)
			continue
		}
		for _, w := range k.workloads {
			if sel.Matches(labels.Set(w.pod.Labels)) {
				if w.kind == "Deployment" && w.name == k.api.Name {
					found = true
				} else {
					t.Errorf("PodDisruptionBudget %s selects the pods of %s %s too", p.Name, w.kind, w.name)
				}
			}
		}
		if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
			t.Errorf("PodDisruptionBudget %s sets neither minAvailable nor maxUnavailable", p.Name)
		}
	}
	if !found {
		t.Error("no PodDisruptionBudget selects the API's pods")
	}
}

// workers: the ScaledJob's pods run one build each, off the API's webhooks, without the
// admin token, with a grace period that outlasts a build and a volume for the caches.
func (k *kube) workers(t *testing.T) {
	spec := k.job.Spec
	pod := spec.JobTargetRef.Template.Spec
	ctr := pod.Containers[0]
	env := k.workerEnv(t)
	if first(ctr.Args) != "worker" || !slices.Contains(ctr.Args, "--once") {
		t.Errorf("the workers' args = %v, want worker --once: a Job ends with its build", ctr.Args)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("the workers' restartPolicy = %q, want Never: a worker that ends is done", pod.RestartPolicy)
	}
	if w := setting(ctr.Args, env, "webhook-concurrency", "SLIPWAY_WEBHOOK_CONCURRENCY", "8"); w != "0" {
		t.Errorf("the workers deliver webhooks (--webhook-concurrency %s); the API does, which runs when no worker does", w)
	}
	for name, v := range env {
		if v.secret != nil && v.secret.Name == "slipway-admin" {
			t.Errorf("the workers read the admin token's secret (%s): a worker needs no token", name)
		}
	}
	timeout, err := time.ParseDuration(env["SLIPWAY_BUILD_TIMEOUT"].value)
	if err != nil {
		timeout = 10 * time.Minute // the default
	}
	if g := gracePeriod(pod); g < timeout+5*time.Minute {
		t.Errorf("the workers' terminationGracePeriodSeconds is %s, want at least SLIPWAY_BUILD_TIMEOUT (%s) and 5m to fetch, assemble and upload: a worker finishes its build on SIGTERM", g, timeout)
	}
	if c := env["SLIPWAY_BUILD_CACHE"].value; !slices.Contains([]string{"shared", "local", "off"}, c) {
		t.Errorf("SLIPWAY_BUILD_CACHE = %q, want shared, local or off", c)
	}
	dir := env["SLIPWAY_DATA_DIR"].value
	var data *corev1.Volume
	for _, m := range ctr.VolumeMounts {
		if m.MountPath == dir {
			for i, v := range pod.Volumes {
				if v.Name == m.Name {
					data = &pod.Volumes[i]
				}
			}
		}
	}
	if data == nil || data.EmptyDir == nil || data.EmptyDir.SizeLimit == nil {
		t.Fatalf("SLIPWAY_DATA_DIR = %q is not an emptyDir volume with a sizeLimit in the workers' pods", dir)
	}
	size, err := parseSize(env["SLIPWAY_BUILD_CACHE_SIZE"].value)
	if err != nil {
		t.Errorf("SLIPWAY_BUILD_CACHE_SIZE: %v", err)
	} else if limit := data.EmptyDir.SizeLimit.Value(); size >= limit {
		t.Errorf("SLIPWAY_BUILD_CACHE_SIZE (%d bytes) does not fit the data volume's sizeLimit %s beside a build's work directory", size, data.EmptyDir.SizeLimit)
	}
	concurrency, err := strconv.Atoi(env["SLIPWAY_BUILD_CONCURRENCY"].value)
	if err != nil {
		t.Errorf("SLIPWAY_BUILD_CONCURRENCY = %q: set it to the CPUs a worker has (the default counts the node's)", env["SLIPWAY_BUILD_CONCURRENCY"].value)
	} else if cpu := ctr.Resources.Limits.Cpu(); cpu.Cmp(*resource.NewQuantity(int64(concurrency), resource.DecimalSI)) < 0 {
		t.Errorf("the workers compile %d platforms at once within a limit of %s CPUs", concurrency, cpu)
	}
	if mem := ctr.Resources.Requests.Memory(); mem.Cmp(resource.MustParse("2Gi")) < 0 {
		t.Errorf("the workers request %s of memory, want at least 2Gi for a compile and its link", mem)
	}
}

// scaler: KEDA scales the workers from zero on the build queue's consumer group: its lag
// (the builds no worker took yet), at the Redis slipway uses, and authenticates as
// slipway does.
func (k *kube) scaler(t *testing.T) {
	spec := k.job.Spec
	stream, group := buildQueue(t)
	env := k.workerEnv(t)
	r, err := parseRedisURL(env["SLIPWAY_REDIS_URL"].value)
	if err != nil {
		t.Fatalf("SLIPWAY_REDIS_URL: %v", err)
	}
	cluster := env["SLIPWAY_REDIS_CLUSTER"].value == "true"
	if spec.MinReplicaCount == nil || *spec.MinReplicaCount != 0 {
		t.Errorf("ScaledJob %s minReplicaCount = %s, want 0 (set): no worker runs with nothing queued", k.job.Name, deref(spec.MinReplicaCount))
	}
	if spec.MaxReplicaCount == nil || *spec.MaxReplicaCount < 1 {
		t.Errorf("ScaledJob %s maxReplicaCount = %s, want at least 1", k.job.Name, deref(spec.MaxReplicaCount))
	}
	wantType, addrKey := "redis-streams", "address"
	if cluster {
		wantType, addrKey = "redis-cluster-streams", "addresses"
	}
	var lag, pending bool
	for i, tr := range spec.Triggers {
		where := fmt.Sprintf("ScaledJob %s trigger %d (%s)", k.job.Name, i, tr.Name)
		m := tr.Metadata
		if tr.Type != wantType {
			t.Errorf("%s is of type %s, want %s (SLIPWAY_REDIS_CLUSTER=%s)", where, tr.Type, wantType, env["SLIPWAY_REDIS_CLUSTER"].value)
		}
		if m["stream"] != stream || m["consumerGroup"] != group {
			t.Errorf("%s reads stream %q group %q, want %q %q (store/paths.go)", where, m["stream"], m["consumerGroup"], stream, group)
		}
		if got, want := kedaAddresses(m[addrKey]), r.kedaAddrs(k.namespaces[0].Name); !slices.Equal(got, want) {
			t.Errorf("%s %s = %q, want %q: the Redis of SLIPWAY_REDIS_URL, as KEDA's operator reaches it from its own namespace", where, addrKey, got, want)
		}
		if tls := m["enableTLS"] == "true"; tls != r.tls {
			t.Errorf("%s enableTLS = %q, but SLIPWAY_REDIS_URL's scheme is %s", where, m["enableTLS"], r.scheme)
		}
		if db, _ := strconv.Atoi(m["databaseIndex"]); db != r.db {
			t.Errorf("%s databaseIndex = %q, but SLIPWAY_REDIS_URL names database %d", where, m["databaseIndex"], r.db)
		}
		if n, err := strconv.Atoi(m["activationLagCount"]); err != nil || n < 0 {
			t.Errorf("%s activationLagCount = %q, want the count above which a worker starts (0: the first build)", where, m["activationLagCount"])
		}
		if v, ok := m["lagCount"]; ok {
			lag = true
			if n, err := strconv.Atoi(v); err != nil || n != 1 {
				t.Errorf("%s lagCount = %q, want 1: one Job for each build", where, v)
			}
		}
		if v, ok := m["pendingEntriesCount"]; ok {
			pending = true
			if n, err := strconv.Atoi(v); err != nil || n != 1 {
				t.Errorf("%s pendingEntriesCount = %q, want 1: one Job for each build", where, v)
			}
		}
		k.triggerAuth(t, where, tr, env)
	}
	if !lag {
		t.Errorf("no trigger of ScaledJob %s scales on lagCount, the one count that lets workers start from zero", k.job.Name)
	}
	// The lag leaves out the builds running Jobs hold: either add those (pending entries)
	// and count the running Jobs against the sum, or count only Jobs not running yet.
	s := spec.ScalingStrategy
	switch {
	case pending && (s.MultipleScalersCalculation != "sum" || (s.Strategy != "" && s.Strategy != "default")):
		t.Errorf("ScaledJob %s adds the lag and the pending entries with multipleScalersCalculation %q and strategy %q, want sum and default", k.job.Name, s.MultipleScalersCalculation, s.Strategy)
	case !pending && s.Strategy != "accurate":
		t.Errorf("ScaledJob %s scales on the lag alone with strategy %q, want accurate: the lag leaves out the builds running Jobs hold", k.job.Name, s.Strategy)
	}
}

// triggerAuth: a trigger authenticates iff slipway's Redis URL has a password, and then
// with the secret key the URL takes it from.
func (k *kube) triggerAuth(t *testing.T, where string, tr kedav1alpha1.ScaleTriggers, env map[string]envVar) {
	r, _ := parseRedisURL(env["SLIPWAY_REDIS_URL"].value)
	var want *corev1.SecretKeySelector
	if r != nil && r.passwordVar != "" {
		want = env[r.passwordVar].secret
	}
	if tr.AuthenticationRef == nil {
		if want != nil {
			t.Errorf("%s has no authenticationRef, but SLIPWAY_REDIS_URL has a password", where)
		}
		return
	}
	if want == nil {
		t.Errorf("%s authenticates with %s, but SLIPWAY_REDIS_URL has no password", where, tr.AuthenticationRef.Name)
		return
	}
	ta := k.triggerAuths[tr.AuthenticationRef.Name]
	if ta == nil || (tr.AuthenticationRef.Kind != "" && tr.AuthenticationRef.Kind != "TriggerAuthentication") {
		t.Errorf("%s authenticates with %s %s, which is not rendered", where, tr.AuthenticationRef.Kind, tr.AuthenticationRef.Name)
		return
	}
	ok := slices.ContainsFunc(ta.Spec.SecretTargetRef, func(s kedav1alpha1.AuthSecretTargetRef) bool {
		return s.Parameter == "password" && s.Name == want.Name && s.Key == want.Key
	})
	if !ok {
		t.Errorf("TriggerAuthentication %s = %+v, want the parameter password from secret %s key %s, as SLIPWAY_REDIS_URL has it", ta.Name, ta.Spec.SecretTargetRef, want.Name, want.Key)
	}
}

// networkPolicies: the API takes connections on its port, a worker takes none, and
// both reach DNS, HTTPS and their Redis; a Redis in the namespace lets KEDA in.
func (k *kube) networkPolicies(t *testing.T) {
	for _, w := range k.workloads {
		ingress, _ := k.policiesFor(w.pod.Labels)
		if len(ingress) == 0 {
			t.Errorf("no NetworkPolicy isolates the ingress of %s %s's pods", w.kind, w.name)
		}
		switch {
		case w.kind == "ScaledJob":
			for _, p := range ingress {
				if len(p.Spec.Ingress) > 0 {
					t.Errorf("NetworkPolicy %s lets connections into the workers' pods, which take none", p.Name)
				}
			}
		case w.name == k.api.Name:
			port := k.api.Spec.Template.Spec.Containers[0].Ports[0]
			if !slices.ContainsFunc(ingress, func(p *networkingv1.NetworkPolicy) bool { return allowsIngress(p, port) }) {
				t.Errorf("no NetworkPolicy lets connections into the API's pods on port %d", port.ContainerPort)
			}
		}
		if w.kind == "StatefulSet" && w.name == "redis" && !k.letsKEDAIn(ingress) {
			t.Error("no NetworkPolicy lets KEDA's operator (namespace keda) reach the Redis in the namespace, whose queue it scales on")
		}
	}
	env := k.workerEnv(t)
	r, err := parseRedisURL(env["SLIPWAY_REDIS_URL"].value)
	if err != nil {
		t.Fatalf("SLIPWAY_REDIS_URL: %v", err)
	}
	wantPorts := map[string]string{"UDP/53": "DNS", "TCP/443": "HTTPS (S3, the Go module proxy, webhooks)"}
	for _, a := range r.addrs {
		_, port, _ := net.SplitHostPort(a)
		wantPorts["TCP/"+port] = "Redis"
	}
	if e := env["SLIPWAY_S3_ENDPOINT"].value; e != "" {
		u, err := url.Parse(e)
		if err != nil {
			t.Errorf("SLIPWAY_S3_ENDPOINT: %v", err)
		} else if p := u.Port(); p != "" {
			wantPorts["TCP/"+p] = "S3"
		}
	}
	for _, w := range k.slipwayPods() {
		_, egress := k.policiesFor(w.pod.Labels)
		if len(egress) == 0 {
			t.Errorf("no NetworkPolicy isolates the egress of %s %s's pods", w.kind, w.name)
			continue
		}
		for port, what := range wantPorts {
			if !slices.ContainsFunc(egress, func(p *networkingv1.NetworkPolicy) bool { return allowsEgress(p, port) }) {
				t.Errorf("no NetworkPolicy lets %s %s's pods reach %s (%s)", w.kind, w.name, what, port)
			}
		}
	}
}

// noSecretsInline: no Secret is rendered and no setting carries one: secrets are
// referred to, and created beside the manifests (deploy/README.md).
func (k *kube) noSecretsInline(t *testing.T) {
	for _, s := range k.secrets {
		t.Errorf("Secret %s is rendered: secrets are created beside the manifests, not kept in them", s.Name)
	}
	secretish := regexp.MustCompile(`(?i)token|passw|secret|credential|private|access_key`)
	for _, cm := range k.configMaps {
		for key, v := range cm.Data {
			if secretish.MatchString(key) {
				t.Errorf("ConfigMap %s sets %s, which belongs in a secret", trimHash(cm.Name), key)
			}
			if u, err := url.Parse(v); err == nil && u.User != nil {
				t.Errorf("ConfigMap %s's %s has credentials in it", trimHash(cm.Name), key)
			}
		}
	}
	for _, w := range k.workloads {
		for _, c := range w.pod.Spec.Containers {
			for _, e := range c.Env {
				if e.ValueFrom == nil && secretish.MatchString(e.Name) {
					t.Errorf("%s %s sets %s in its manifest; take it from a secret", w.kind, w.name, e.Name)
				}
				u, err := url.Parse(e.Value)
				if err != nil || u.User == nil {
					continue
				}
				if p, _ := u.User.Password(); !regexp.MustCompile(`^\$\([A-Z0-9_]+\)$`).MatchString(p) || u.User.Username() != "" {
					t.Errorf("%s %s's %s has credentials in it; refer to a variable from a secret, $(NAME), instead", w.kind, w.name, e.Name)
				}
			}
		}
	}
	for _, tr := range k.job.Spec.Triggers {
		for key := range tr.Metadata {
			if secretish.MatchString(key) && !strings.HasSuffix(key, "FromEnv") {
				t.Errorf("trigger %s sets %s in its metadata; take it from a TriggerAuthentication", tr.Name, key)
			}
		}
	}
	for _, ta := range k.triggerAuths {
		if len(ta.Spec.Env) > 0 || ta.Spec.FilePath != "" {
			t.Errorf("TriggerAuthentication %s takes values from elsewhere than a secret", ta.Name)
		}
	}
}

// readme: deploy/README.md says how to render and apply the overlay, how to make the
// secrets its pods require, and what each rendered object is for.
func (k *kube) readme(t *testing.T) {
	readme := readFile(t, "README.md")
	dir := "deploy/kubernetes/overlays/" + k.overlay
	wants := []string{"kubectl kustomize " + dir, "kubectl apply -k " + dir}
	for _, w := range k.slipwayPods() {
		for _, v := range k.envOf(t, w.pod.Spec.Containers[0]) {
			if s := v.secret; s != nil && !isTrue(s.Optional) {
				wants = append(wants, fmt.Sprintf("create secret generic %s --from-literal=%s=", s.Name, s.Key))
			}
		}
	}
	for _, o := range k.objs {
		name := o.GetName()
		if _, generated := o.(*corev1.ConfigMap); generated {
			name = trimHash(name)
		}
		wants = append(wants, "`"+kindOf(o)+"/"+name+"`")
	}
	slices.Sort(wants)
	for _, w := range slices.Compact(wants) {
		if !contains(readme, w) {
			t.Errorf("deploy/README.md does not say %s", w)
		}
	}
}

// slipwayPods are the workloads that run slipway: the API and the workers.
func (k *kube) slipwayPods() []workload {
	var ws []workload
	for _, w := range k.workloads {
		if (w.kind == "Deployment" && w.name == k.api.Name) || (w.kind == "ScaledJob" && w.name == k.job.Name) {
			ws = append(ws, w)
		}
	}
	return ws
}

// policiesFor returns the NetworkPolicies that isolate the ingress and the egress of pods
// with these labels.
func (k *kube) policiesFor(podLabels map[string]string) (ingress, egress []*networkingv1.NetworkPolicy) {
	for _, p := range k.policies {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		types := p.Spec.PolicyTypes
		if len(types) == 0 {
			types = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
		}
		if slices.Contains(types, networkingv1.PolicyTypeIngress) {
			ingress = append(ingress, p)
		}
		if slices.Contains(types, networkingv1.PolicyTypeEgress) {
			egress = append(egress, p)
		}
	}
	return ingress, egress
}

func allowsIngress(p *networkingv1.NetworkPolicy, port corev1.ContainerPort) bool {
	for _, r := range p.Spec.Ingress {
		if len(r.Ports) == 0 {
			return true
		}
		for _, pp := range r.Ports {
			if pp.Port == nil || (pp.Port.Type == intstr.Int && pp.Port.IntVal == port.ContainerPort) ||
				(pp.Port.Type == intstr.String && pp.Port.StrVal == port.Name) {
				return true
			}
		}
	}
	return false
}

// allowsEgress reports whether some egress rule of p lets traffic out to port, "TCP/443".
func allowsEgress(p *networkingv1.NetworkPolicy, port string) bool {
	proto, num, _ := strings.Cut(port, "/")
	for _, r := range p.Spec.Egress {
		if len(r.Ports) == 0 {
			return true
		}
		for _, pp := range r.Ports {
			pr := corev1.ProtocolTCP
			if pp.Protocol != nil {
				pr = *pp.Protocol
			}
			if string(pr) == proto && (pp.Port == nil || pp.Port.String() == num) {
				return true
			}
		}
	}
	return false
}

// letsKEDAIn reports whether one of the policies admits the namespace keda.
func (k *kube) letsKEDAIn(policies []*networkingv1.NetworkPolicy) bool {
	keda := labels.Set{"kubernetes.io/metadata.name": "keda"}
	for _, p := range policies {
		for _, r := range p.Spec.Ingress {
			for _, from := range r.From {
				if from.NamespaceSelector == nil {
					continue
				}
				if sel, err := metav1.LabelSelectorAsSelector(from.NamespaceSelector); err == nil && sel.Matches(keda) {
					return true
				}
			}
		}
	}
	return false
}

func (k *kube) hasService(name, port string) bool {
	for _, s := range k.services {
		for _, p := range s.Spec.Ports {
			if s.Name == name && fmt.Sprint(p.Port) == port {
				return true
			}
		}
	}
	return false
}

// envVar is one variable of a container's environment: its value, or the secret it comes from.
type envVar struct {
	value  string
	secret *corev1.SecretKeySelector
}

func (k *kube) apiEnv(t *testing.T) map[string]envVar {
	return k.envOf(t, k.api.Spec.Template.Spec.Containers[0])
}

func (k *kube) workerEnv(t *testing.T) map[string]envVar {
	return k.envOf(t, k.job.Spec.JobTargetRef.Template.Spec.Containers[0])
}

// envOf is the environment a container starts with, as the kubelet makes it: the rendered
// ConfigMaps of envFrom, then env. A $(NAME) in a value must name a variable defined
// before it, or the kubelet leaves it as it is; it is kept unexpanded here.
func (k *kube) envOf(t *testing.T, c corev1.Container) map[string]envVar {
	t.Helper()
	env := map[string]envVar{}
	for _, e := range c.EnvFrom {
		if r := e.ConfigMapRef; r != nil && k.configMaps[r.Name] != nil {
			for key, v := range k.configMaps[r.Name].Data {
				env[e.Prefix+key] = envVar{value: v}
			}
		}
	}
	for _, e := range c.Env {
		for _, ref := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(e.Value, -1) {
			if _, ok := env[ref[1]]; !ok {
				t.Errorf("container %s's %s refers to $(%s), which is not defined before it", c.Name, e.Name, ref[1])
			}
		}
		v := envVar{value: e.Value}
		if e.ValueFrom != nil {
			v.secret = e.ValueFrom.SecretKeyRef
		}
		env[e.Name] = v
	}
	return env
}

// setting is the value of a slipway setting for a container: its flag in args, else its
// variable, else its default.
func setting(args []string, env map[string]envVar, flag, variable, def string) string {
	for i, a := range args {
		if a == "--"+flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--"+flag+"="); ok {
			return v
		}
	}
	if v, ok := env[variable]; ok {
		return v.value
	}
	return def
}

// redisURL is what the checks need of SLIPWAY_REDIS_URL, in go-redis's forms:
// redis[s]://[:password@]host:port[/db][?addr=host:port...].
type redisURL struct {
	scheme      string
	tls         bool
	addrs       []string // host:port, the URL's host first
	db          int
	passwordVar string // NAME when the password is $(NAME)
}

func parseRedisURL(s string) (*redisURL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("%q is not a redis:// or rediss:// URL", s)
	}
	r := &redisURL{scheme: u.Scheme, tls: u.Scheme == "rediss", addrs: append([]string{u.Host}, u.Query()["addr"]...)}
	for _, a := range r.addrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return nil, fmt.Errorf("%q: %w", a, err)
		}
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if r.db, err = strconv.Atoi(db); err != nil {
			return nil, fmt.Errorf("database %q: %w", db, err)
		}
	}
	if p, ok := u.User.Password(); ok {
		r.passwordVar = strings.TrimSuffix(strings.TrimPrefix(p, "$("), ")")
	}
	return r, nil
}

// kedaAddrs are the Redis's addresses as KEDA's operator, in its own namespace, reaches
// them: a Service's bare name gets the namespace.
func (r *redisURL) kedaAddrs(namespace string) []string {
	var out []string
	for _, a := range r.addrs {
		host, port, _ := net.SplitHostPort(a)
		if !strings.Contains(host, ".") {
			host += "." + namespace + ".svc.cluster.local"
		}
		out = append(out, net.JoinHostPort(host, port))
	}
	return out
}

// kedaAddresses splits a trigger's comma-separated addresses as KEDA does.
func kedaAddresses(s string) []string {
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

// parseSize reads a byte count as slipway's settings do: a number with an optional KiB,
// MiB, GiB or TiB suffix.
func parseSize(s string) (int64, error) {
	for i, unit := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if n, ok := strings.CutSuffix(s, unit); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v << (10 * (i + 1)), err
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func gracePeriod(spec corev1.PodSpec) time.Duration {
	if spec.TerminationGracePeriodSeconds == nil {
		return 30 * time.Second // Kubernetes's default
	}
	return time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
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

// deref writes *p, or "unset".
func deref(p *int32) string {
	if p == nil {
		return "unset"
	}
	return strconv.Itoa(int(*p))
}

func first(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
