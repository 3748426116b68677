package kubernetes

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/rampart-edge/rampart/internal/config"
	"github.com/rampart-edge/rampart/internal/originverify"
)

const namespace = "rampart"

// manifests is every object of every *.yaml file here, decoded strictly.
type manifests struct {
	namespaces   []*corev1.Namespace
	configMaps   []*corev1.ConfigMap
	secrets      []*corev1.Secret
	services     []*corev1.Service
	policies     []*networkingv1.NetworkPolicy
	workloads    []workload
	kustomFiles  []string // resources listed in kustomization.yaml
	objectsByKey map[string]string
}

// workload is a Deployment or StatefulSet, reduced to what the checks need.
type workload struct {
	kind, name string
	selector   *metav1.LabelSelector
	template   corev1.PodTemplateSpec
	claims     []string // a StatefulSet's volume claim templates, mountable like volumes
}

func (w workload) labels() labels.Set { return w.template.Labels }

// docSep splits a multi-document YAML file.
var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// decodeStrict decodes one document into the Kubernetes type its apiVersion and kind name,
// refusing unknown and duplicate fields.
func decodeStrict(t *testing.T, file string, doc []byte, m *manifests) {
	t.Helper()
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	strict := func(v any) {
		t.Helper()
		if err := yaml.UnmarshalStrict(doc, v); err != nil {
			t.Fatalf("%s: %s %s: %v", file, tm.APIVersion, tm.Kind, err)
		}
	}
	var meta *metav1.ObjectMeta
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 Namespace":
		o := &corev1.Namespace{}
		strict(o)
		m.namespaces, meta = append(m.namespaces, o), &o.ObjectMeta
	case "v1 ConfigMap":
		o := &corev1.ConfigMap{}
		strict(o)
		m.configMaps, meta = append(m.configMaps, o), &o.ObjectMeta
	case "v1 Secret":
		o := &corev1.Secret{}
		strict(o)
		m.secrets, meta = append(m.secrets, o), &o.ObjectMeta
	case "v1 Service":
		o := &corev1.Service{}
		strict(o)
		m.services, meta = append(m.services, o), &o.ObjectMeta
	case "apps/v1 Deployment":
		o := &appsv1.Deployment{}
		strict(o)
		m.workloads = append(m.workloads, workload{"Deployment", o.Name, o.Spec.Selector, o.Spec.Template, nil})
		meta = &o.ObjectMeta
	case "apps/v1 StatefulSet":
		o := &appsv1.StatefulSet{}
		strict(o)
		var claims []string
		for _, c := range o.Spec.VolumeClaimTemplates {
			claims = append(claims, c.Name)
		}
		m.workloads = append(m.workloads, workload{"StatefulSet", o.Name, o.Spec.Selector, o.Spec.Template, claims})
		meta = &o.ObjectMeta
	case "networking.k8s.io/v1 NetworkPolicy":
		o := &networkingv1.NetworkPolicy{}
		strict(o)
		m.policies, meta = append(m.policies, o), &o.ObjectMeta
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		var k struct {
			APIVersion string   `json:"apiVersion"`
			Kind       string   `json:"kind"`
			Namespace  string   `json:"namespace"`
			Resources  []string `json:"resources"`
		}
		strict(&k)
		if k.Namespace != namespace {
			t.Errorf("%s: namespace %q, want %q", file, k.Namespace, namespace)
		}
		m.kustomFiles = k.Resources
		return
	default:
		t.Fatalf("%s: unexpected object %s %s: add its type to decodeStrict", file, tm.APIVersion, tm.Kind)
	}
	if meta.Name == "" {
		t.Errorf("%s: %s without a name", file, tm.Kind)
	}
	if tm.Kind != "Namespace" && meta.Namespace != namespace {
		t.Errorf("%s: %s %s is in namespace %q, want %q", file, tm.Kind, meta.Name, meta.Namespace, namespace)
	}
	key := tm.Kind + "/" + meta.Name
	if prev, dup := m.objectsByKey[key]; dup {
		t.Errorf("%s: %s is also defined in %s", file, key, prev)
	}
	m.objectsByKey[key] = file
}

func load(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{objectsByKey: map[string]string{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range docSep.Split(string(data), -1) {
			if isBlank(doc) {
				continue
			}
			decodeStrict(t, f, []byte(doc), m)
		}
	}
	return m
}

// isBlank reports whether a document holds only comments and space.
func isBlank(doc string) bool {
	for line := range strings.SplitSeq(doc, "\n") {
		l := strings.TrimSpace(line)
		if l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

// TestStrictDecodeCatchesTypos proves the check has teeth: a misspelt field fails.
func TestStrictDecodeCatchesTypos(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec:\n  selector: {a: b}\n"
	for _, bad := range []string{
		strings.Replace(good, "selector", "selecter", 1),
		good + "  prots: []\n",
		strings.Replace(good, "metadata: {name: x}", "metadata: {name: x, name: y}", 1),
	} {
		if err := yaml.UnmarshalStrict([]byte(bad), &corev1.Service{}); err == nil {
			t.Errorf("strict decode accepted:\n%s", bad)
		}
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	m := load(t)
	if len(m.namespaces) != 1 || m.namespaces[0].Name != namespace {
		t.Errorf("want exactly one Namespace %q", namespace)
	}
	// kustomization.yaml lists every manifest except the Secrets (placeholders: created by hand).
	files, _ := filepath.Glob("*.yaml")
	for _, f := range files {
		listed := slices.Contains(m.kustomFiles, f)
		switch f {
		case "kustomization.yaml", "secrets.yaml":
			if listed {
				t.Errorf("kustomization.yaml must not list %s", f)
			}
		default:
			if !listed {
				t.Errorf("kustomization.yaml does not list %s", f)
			}
		}
	}
	for _, r := range m.kustomFiles {
		if _, err := os.Stat(r); err != nil {
			t.Errorf("kustomization.yaml lists %s: %v", r, err)
		}
	}
}

func TestWorkloads(t *testing.T) {
	m := load(t)
	for _, w := range m.workloads {
		t.Run(w.kind+"/"+w.name, func(t *testing.T) {
			sel, err := metav1.LabelSelectorAsSelector(w.selector)
			if err != nil || sel.Empty() || !sel.Matches(w.labels()) {
				t.Fatalf("selector %v does not match the pod labels %v (%v)", w.selector, w.labels(), err)
			}
			spec := w.template.Spec
			if spec.SecurityContext == nil || spec.SecurityContext.RunAsNonRoot == nil || !*spec.SecurityContext.RunAsNonRoot {
				t.Error("pod does not set runAsNonRoot: true")
			}
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Error("pod mounts a service account token it does not need")
			}
			volumes := map[string]bool{}
			for _, v := range spec.Volumes {
				volumes[v.Name] = true
			}
			for _, c := range w.claims {
				volumes[c] = true
			}
			for _, c := range spec.Containers {
				if c.SecurityContext == nil || c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation {
					t.Errorf("container %s allows privilege escalation", c.Name)
				}
				// Pod Security "restricted" (namespace.yaml) admits no pod without these.
				if c.SecurityContext == nil || c.SecurityContext.Capabilities == nil || !slices.Contains(c.SecurityContext.Capabilities.Drop, "ALL") {
					t.Errorf("container %s does not drop ALL capabilities", c.Name)
				}
				if spec.SecurityContext == nil || spec.SecurityContext.SeccompProfile == nil || spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("container %s: pod has no RuntimeDefault seccomp profile", c.Name)
				}
				if c.ReadinessProbe == nil || c.LivenessProbe == nil {
					t.Errorf("container %s lacks a readiness or liveness probe", c.Name)
				}
				if c.Resources.Limits.Memory().IsZero() {
					t.Errorf("container %s has no memory limit", c.Name)
				}
				for _, vm := range c.VolumeMounts {
					if !volumes[vm.Name] {
						t.Errorf("container %s mounts unknown volume %s", c.Name, vm.Name)
					}
				}
				if c.Image == "" || !strings.Contains(c.Image, ":") {
					t.Errorf("container %s: image %q has no tag", c.Name, c.Image)
				}
				if w.labels()["app.kubernetes.io/name"] != "rampart" {
					continue
				}
				// Rampart's probes: the admin listener's /healthz, on the named admin port.
				for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
					if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port != intstr.FromString("admin") {
						t.Errorf("%s probe must be GET /healthz on port admin: %+v", name, p)
					}
				}
				if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "admin" && p.ContainerPort == 9900 }) {
					t.Errorf("container %s has no admin port 9900", c.Name)
				}
				if i := slices.Index(c.Args, "--admin"); i < 0 || i+1 >= len(c.Args) || c.Args[i+1] != "0.0.0.0:9900" {
					t.Errorf("container %s args %v: want --admin 0.0.0.0:9900 (the probes' port)", c.Name, c.Args)
				}
				if c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
					t.Errorf("container %s: root filesystem is writable", c.Name)
				}
				// A stop is the drain delay (the Service's endpoints update while the pod still
				// accepts), then up to --grace for the requests in flight: the kubelet's SIGKILL
				// must come after both.
				drain, grace := durationArg(t, c.Args, "--drain-delay", 0), durationArg(t, c.Args, "--grace", 10*time.Second)
				if drain <= 0 {
					t.Errorf("container %s args %v: want --drain-delay (a few seconds for the endpoints to update)", c.Name, c.Args)
				}
				if p := spec.TerminationGracePeriodSeconds; p == nil || time.Duration(*p)*time.Second <= drain+grace {
					t.Errorf("terminationGracePeriodSeconds %v must exceed --drain-delay %v + --grace %v", p, drain, grace)
				}
			}
		})
	}
}

// TestServicesSelectWorkloads: each Service selects exactly one workload's pods, and its target
// ports are named ports of those pods.
func TestServicesSelectWorkloads(t *testing.T) {
	m := load(t)
	for _, s := range m.services {
		t.Run(s.Name, func(t *testing.T) {
			if len(s.Spec.Selector) == 0 {
				t.Fatal("Service without a selector")
			}
			var matched []workload
			for _, w := range m.workloads {
				if labels.SelectorFromSet(s.Spec.Selector).Matches(w.labels()) {
					matched = append(matched, w)
				}
			}
			if len(matched) != 1 {
				t.Fatalf("selector %v matches %d workloads, want 1", s.Spec.Selector, len(matched))
			}
			for _, p := range s.Spec.Ports {
				if _, ok := containerPort(matched[0], p.TargetPort); !ok {
					t.Errorf("port %s: target %s is not a port of %s", p.Name, p.TargetPort.String(), matched[0].name)
				}
			}
		})
	}
}

func containerPort(w workload, target intstr.IntOrString) (int32, bool) {
	for _, c := range w.template.Spec.Containers {
		for _, p := range c.Ports {
			if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}

func (m *manifests) workload(t *testing.T, component string) workload {
	t.Helper()
	for _, w := range m.workloads {
		if w.labels()["app.kubernetes.io/component"] == component {
			return w
		}
	}
	t.Fatalf("no workload with component %q in the manifests", component)
	return workload{}
}

// allowed evaluates the NetworkPolicies for a connection from pod labels src to pod labels dst on
// port: a policy that selects the pod and has the direction in its policyTypes isolates it, and
// then some rule of some such policy must admit the peer and port. Both the source's egress and
// the destination's ingress must allow it.
func (m *manifests) allowed(src, dst labels.Set, port int32) bool {
	return m.admits(src, dst, port, networkingv1.PolicyTypeEgress) && m.admits(dst, src, port, networkingv1.PolicyTypeIngress)
}

func (m *manifests) admits(pod, peer labels.Set, port int32, dir networkingv1.PolicyType) bool {
	isolated := false
	for _, p := range m.policies {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || !sel.Matches(pod) || !slices.Contains(p.Spec.PolicyTypes, dir) {
			continue
		}
		isolated = true
		type rule struct {
			peers []networkingv1.NetworkPolicyPeer
			ports []networkingv1.NetworkPolicyPort
		}
		var rules []rule
		if dir == networkingv1.PolicyTypeIngress {
			for _, r := range p.Spec.Ingress {
				rules = append(rules, rule{r.From, r.Ports})
			}
		} else {
			for _, r := range p.Spec.Egress {
				rules = append(rules, rule{r.To, r.Ports})
			}
		}
		for _, r := range rules {
			portOK := len(r.ports) == 0
			for _, pp := range r.ports {
				if pp.Port != nil && pp.Port.IntVal == port && (pp.Protocol == nil || *pp.Protocol == corev1.ProtocolTCP) {
					portOK = true
				}
			}
			peerOK := len(r.peers) == 0
			for _, pe := range r.peers {
				// Only same-namespace pod selectors name Rampart's pods; namespace selectors
				// (DNS in kube-system) never match them.
				if pe.PodSelector != nil && pe.NamespaceSelector == nil && pe.IPBlock == nil {
					s, err := metav1.LabelSelectorAsSelector(pe.PodSelector)
					if err == nil && s.Matches(peer) {
						peerOK = true
					}
				}
			}
			if portOK && peerOK {
				return true
			}
		}
	}
	return !isolated
}

// TestNetworkPoliciesAreTheSecurityGroup checks the policies against the architecture: every
// selector matches some pods, there is a default deny, and the table of who may reach whom holds.
func TestNetworkPoliciesAreTheSecurityGroup(t *testing.T) {
	m := load(t)
	hasDefaultDeny := false
	for _, p := range m.policies {
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.PodSelector.MatchExpressions) == 0 &&
			slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) &&
			len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 {
			hasDefaultDeny = true
		}
		// Every selector names pods that exist.
		selectors := []*metav1.LabelSelector{&p.Spec.PodSelector}
		for _, r := range p.Spec.Ingress {
			for _, pe := range r.From {
				if pe.NamespaceSelector == nil {
					selectors = append(selectors, pe.PodSelector)
				}
			}
		}
		for _, r := range p.Spec.Egress {
			for _, pe := range r.To {
				if pe.NamespaceSelector == nil {
					selectors = append(selectors, pe.PodSelector)
				}
			}
		}
		for _, ls := range selectors {
			if ls == nil {
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(ls)
			if err != nil {
				t.Fatalf("policy %s: %v", p.Name, err)
			}
			if !slices.ContainsFunc(m.workloads, func(w workload) bool { return sel.Matches(w.labels()) }) {
				t.Errorf("policy %s: selector %v matches no pods", p.Name, ls.MatchLabels)
			}
		}
	}
	if !hasDefaultDeny {
		t.Error("no default-deny NetworkPolicy (empty podSelector, Ingress and Egress, no rules)")
	}

	outside := labels.Set{"example.com/client": "anyone"} // a pod or client outside Rampart
	pods := map[string]labels.Set{"outside": outside}
	for _, c := range []string{"gateway", "load-balancer", "app", "database", "redis"} {
		pods[c] = m.workload(t, c).labels()
	}
	tests := []struct {
		from, to string
		port     int32
		want     bool
	}{
		{"gateway", "load-balancer", 8081, true},
		{"load-balancer", "app", 9001, true},
		{"app", "database", 5432, true},
		{"gateway", "redis", 6379, true},
		{"load-balancer", "redis", 6379, true},
		// The private tier: the app from load balancer pods only.
		{"gateway", "app", 9001, false},
		{"redis", "app", 9001, false},
		{"database", "app", 9001, false},
		// The database from app pods only.
		{"load-balancer", "database", 5432, false},
		{"gateway", "database", 5432, false},
		{"redis", "database", 5432, false},
		// Redis and the load balancer are not public either.
		{"app", "redis", 6379, false},
		{"app", "load-balancer", 8081, false},
		// Only the right ports, even between the right pods.
		{"load-balancer", "app", 9900, false},
		{"app", "database", 22, false},
		// Nothing leaves toward the public tier from the private one.
		{"app", "gateway", 8080, false},
		{"database", "app", 9001, false},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%s->%s:%d", tt.from, tt.to, tt.port)
		if got := m.allowed(pods[tt.from], pods[tt.to], tt.port); got != tt.want {
			t.Errorf("%s allowed = %v, want %v", name, got, tt.want)
		}
	}
	// The gateway is the public entry point: its ingress admits any source on 8080.
	if !m.admits(pods["gateway"], outside, 8080, networkingv1.PolicyTypeIngress) {
		t.Error("the gateway does not admit outside clients on 8080")
	}
	// Default deny covers egress too: no pod may open a connection out of the architecture
	// (the internet, the cluster's other pods), only the listed paths and DNS.
	for _, c := range []string{"gateway", "load-balancer", "app", "database", "redis"} {
		for _, port := range []int32{80, 443, 5432, 6379, 53} {
			if m.admits(pods[c], outside, port, networkingv1.PolicyTypeEgress) {
				t.Errorf("%s may connect to an outside peer on %d", c, port)
			}
		}
	}
	for _, c := range []string{"load-balancer", "app", "database", "redis"} {
		for _, port := range []int32{8081, 9001, 5432, 6379, 9900} {
			if m.admits(pods[c], outside, port, networkingv1.PolicyTypeIngress) {
				t.Errorf("%s admits outside clients on %d", c, port)
			}
		}
	}
}

// TestConfigMapPassesValidation parses the ConfigMap file each Rampart Deployment runs with that
// Deployment's own environment (Secret values stand in as placeholders), as `rampart validate`
// would in that pod, and checks that the file holds what the command runs and no more.
func TestConfigMapPassesValidation(t *testing.T) {
	m := load(t)
	if len(m.configMaps) != 1 {
		t.Fatalf("want one ConfigMap, got %d", len(m.configMaps))
	}
	for _, w := range m.workloads {
		if w.labels()["app.kubernetes.io/name"] != "rampart" {
			continue
		}
		t.Run(w.name, func(t *testing.T) {
			c := w.template.Spec.Containers[0]
			if len(c.Args) < 3 || c.Args[1] != "-c" {
				t.Fatalf("args %v: want COMMAND -c FILE", c.Args)
			}
			file := filepath.Base(c.Args[2])
			data, ok := m.configMaps[0].Data[file]
			if !ok {
				t.Fatalf("ConfigMap has no %s", file)
			}
			env := podEnv(c)
			cfg, err := config.Parse("deploy/kubernetes/config.yaml:"+file, []byte(data), func(k string) (string, bool) {
				v, ok := env[k]
				return v, ok
			})
			if err != nil {
				t.Fatalf("%s does not validate with %s's environment:\n%v", file, w.name, err)
			}
			mounted := false
			for _, vm := range c.VolumeMounts {
				if vm.Name == "config" && c.Args[2] == vm.MountPath+"/"+file {
					mounted = true
				}
			}
			if !mounted {
				t.Errorf("config file %s is not the mounted ConfigMap", c.Args[2])
			}
			keysMounted := slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
				return vm.Name == "keyring" && strings.HasPrefix(cfg.Secrets["origin-verify"].File, vm.MountPath+"/")
			})
			if _, ok := env["DATABASE_URL"]; ok && c.Args[0] != "app" {
				t.Errorf("%s must not get the database URL", c.Args[0])
			}
			if cfg.Admin == nil || cfg.Admin.Token == "" {
				t.Error("the admin listener on 0.0.0.0 needs admin.token")
			}
			switch cmd := c.Args[0]; cmd {
			case "gateway":
				if len(cfg.Gateways) == 0 || !keysMounted || len(cfg.Apps) > 0 {
					t.Errorf("gateway: %d gateways, keyring mounted %v", len(cfg.Gateways), keysMounted)
				}
			case "lb":
				if len(cfg.LoadBalancers) == 0 || !keysMounted || len(cfg.Apps) > 0 {
					t.Errorf("lb: %d load balancers, keyring mounted %v", len(cfg.LoadBalancers), keysMounted)
				}
			case "app":
				if len(cfg.Apps) == 0 || len(cfg.Secrets) > 0 || len(cfg.Gateways)+len(cfg.LoadBalancers) > 0 {
					t.Error("app: its file must hold the apps and nothing else")
				}
				if _, ok := env["RAMPART_REDIS_URL"]; ok {
					t.Error("the app tier must not get the Redis URL")
				}
				if slices.ContainsFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == "keyring" }) {
					t.Error("the app tier must not hold the origin-verify keyring")
				}
				if !strings.HasPrefix(cfg.Apps[0].Database, "postgres://") {
					t.Errorf("app database is not PostgreSQL")
				}
			default:
				t.Errorf("unexpected command %q", cmd)
			}
		})
	}
}

// podEnv resolves a container's env as the kubelet does: $(NAME) refers to an earlier variable;
// values from Secrets become placeholders.
func podEnv(c corev1.Container) map[string]string {
	env := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			env[e.Name] = "placeholder-" + strings.ToLower(e.Name)
			continue
		}
		env[e.Name] = ref.ReplaceAllStringFunc(e.Value, func(s string) string {
			if v, ok := env[s[2:len(s)-1]]; ok {
				return v
			}
			return s
		})
	}
	return env
}

// TestSecretPlaceholdersFailClosed: the committed keyring placeholder is not a keyring, so a pod
// started before the real Secret exists refuses to run instead of using a published key.
func TestSecretPlaceholdersFailClosed(t *testing.T) {
	m := load(t)
	found := false
	for _, s := range m.secrets {
		if v, ok := s.StringData["origin-verify.keys"]; ok {
			found = true
			if _, err := originverify.ParseFile([]byte(v)); err == nil {
				t.Errorf("secret %s holds a usable keyring; it must be a placeholder", s.Name)
			}
		}
		for k, v := range s.StringData {
			if k != "origin-verify.keys" && v != "REPLACE-ME" {
				t.Errorf("secret %s key %s: committed value is not the REPLACE-ME placeholder", s.Name, k)
			}
		}
	}
	if !found {
		t.Error("no Secret carries origin-verify.keys")
	}
}

// TestPublicServiceKeepsClientAddress: the gateway throttles per client address (source_ip) and
// the load balancer's WAF rate rule counts by the address the gateway forwards. With the default
// externalTrafficPolicy (Cluster) the node SNATs every outside connection to its own address, so
// all clients behind a node would share one bucket; Local keeps the client's address.
func TestPublicServiceKeepsClientAddress(t *testing.T) {
	m := load(t)
	for _, s := range m.services {
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer && s.Spec.Type != corev1.ServiceTypeNodePort {
			continue
		}
		if s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
			t.Errorf("Service %s (%s): externalTrafficPolicy = %q, want Local (client addresses reach the gateway)", s.Name, s.Spec.Type, s.Spec.ExternalTrafficPolicy)
		}
	}
}

// durationArg is the value of flag in args, or def when absent.
func durationArg(t *testing.T, args []string, flag string, def time.Duration) time.Duration {
	t.Helper()
	i := slices.Index(args, flag)
	if i < 0 {
		return def
	}
	if i+1 >= len(args) {
		t.Fatalf("args %v: %s without a value", args, flag)
	}
	d, err := time.ParseDuration(args[i+1])
	if err != nil {
		t.Fatalf("args %v: %s: %v", args, flag, err)
	}
	return d
}
