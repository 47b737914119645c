package k8s

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The subset of the Kubernetes API the manifests use. Documents are
// decoded with KnownFields, so a misspelt or misplaced field fails here
// instead of being silently dropped by a cluster.

type meta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

type header struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
}

type namespace struct {
	header `yaml:",inline"`
}

type secret struct {
	header     `yaml:",inline"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
}

type pvcSpec struct {
	AccessModes      []string `yaml:"accessModes"`
	StorageClassName *string  `yaml:"storageClassName"`
	Resources        struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
}

type pvc struct {
	header `yaml:",inline"`
	Spec   pvcSpec `yaml:"spec"`
}

type servicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
	Protocol   string `yaml:"protocol"`
}

type service struct {
	header `yaml:",inline"`
	Spec   struct {
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []servicePort     `yaml:"ports"`
	} `yaml:"spec"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type envVar struct {
	Name      string `yaml:"name"`
	Value     string `yaml:"value"`
	ValueFrom *struct {
		FieldRef *struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	} `yaml:"valueFrom"`
}

type probe struct {
	Exec *struct {
		Command []string `yaml:"command"`
	} `yaml:"exec"`
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	TimeoutSeconds   int `yaml:"timeoutSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Args            []string `yaml:"args"`
	Env             []envVar `yaml:"env"`
	Ports           []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type volume struct {
	Name   string `yaml:"name"`
	Secret *struct {
		SecretName  string `yaml:"secretName"`
		DefaultMode int    `yaml:"defaultMode"`
	} `yaml:"secret"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
	} `yaml:"persistentVolumeClaim"`
	EmptyDir *struct {
		SizeLimit string `yaml:"sizeLimit"`
	} `yaml:"emptyDir"`
}

type podTemplate struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		SecurityContext struct {
			RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
			RunAsUser      *int64 `yaml:"runAsUser"`
			RunAsGroup     *int64 `yaml:"runAsGroup"`
			FSGroup        *int64 `yaml:"fsGroup"`
			SeccompProfile struct {
				Type string `yaml:"type"`
			} `yaml:"seccompProfile"`
		} `yaml:"securityContext"`
		AutomountServiceAccountToken  *bool `yaml:"automountServiceAccountToken"`
		TerminationGracePeriodSeconds int   `yaml:"terminationGracePeriodSeconds"`
		TopologySpreadConstraints     []struct {
			MaxSkew           int           `yaml:"maxSkew"`
			TopologyKey       string        `yaml:"topologyKey"`
			WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
			LabelSelector     labelSelector `yaml:"labelSelector"`
		} `yaml:"topologySpreadConstraints"`
		Containers []container `yaml:"containers"`
		Volumes    []volume    `yaml:"volumes"`
	} `yaml:"spec"`
}

type deployment struct {
	header `yaml:",inline"`
	Spec   struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		Selector labelSelector `yaml:"selector"`
		Template podTemplate   `yaml:"template"`
	} `yaml:"spec"`
}

type statefulSet struct {
	header `yaml:",inline"`
	Spec   struct {
		ServiceName          string        `yaml:"serviceName"`
		Replicas             *int          `yaml:"replicas"`
		PodManagementPolicy  string        `yaml:"podManagementPolicy"`
		Selector             labelSelector `yaml:"selector"`
		Template             podTemplate   `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata meta    `yaml:"metadata"`
			Spec     pvcSpec `yaml:"spec"`
		} `yaml:"volumeClaimTemplates"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	header `yaml:",inline"`
	Spec   struct {
		MaxUnavailable int           `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name   string `yaml:"name"`
		NewTag string `yaml:"newTag"`
	} `yaml:"images"`
}

// apiVersions are the API groups each kind is served by.
var apiVersions = map[string]string{
	"Namespace":             "v1",
	"Secret":                "v1",
	"PersistentVolumeClaim": "v1",
	"Service":               "v1",
	"Deployment":            "apps/v1",
	"StatefulSet":           "apps/v1",
	"PodDisruptionBudget":   "policy/v1",
}

// manifests is every object of every manifest, decoded.
type manifests struct {
	files        []string // manifest files, kustomization.yaml excluded
	namespaces   map[string]namespace
	secrets      map[string]secret
	pvcs         map[string]pvc
	services     map[string]service
	deployments  map[string]deployment
	statefulSets map[string]statefulSet
	pdbs         map[string]podDisruptionBudget
	// exampleOnly are objects of secrets.example.yaml, never applied.
	exampleOnly map[string]bool
}

func load(t *testing.T) *manifests {
	t.Helper()
	paths, err := filepath.Glob("*.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{
		namespaces: map[string]namespace{}, secrets: map[string]secret{}, pvcs: map[string]pvc{},
		services: map[string]service{}, deployments: map[string]deployment{}, statefulSets: map[string]statefulSet{},
		pdbs: map[string]podDisruptionBudget{}, exampleOnly: map[string]bool{},
	}
	for _, path := range paths {
		if path == "kustomization.yaml" {
			continue
		}
		m.files = append(m.files, path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for i := 0; ; i++ {
			var doc yaml.Node
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s, document %d: %v", path, i, err)
			}
			var h header
			if err := doc.Decode(&h); err != nil {
				t.Fatalf("%s, document %d: %v", path, i, err)
			}
			where := path + ": " + h.Kind + " " + h.Metadata.Name
			if want, ok := apiVersions[h.Kind]; !ok {
				t.Fatalf("%s: unexpected kind %q", where, h.Kind)
			} else if h.APIVersion != want {
				t.Errorf("%s: apiVersion %q, want %q", where, h.APIVersion, want)
			}
			if h.Metadata.Name == "" {
				t.Errorf("%s, document %d: no metadata.name", path, i)
			}
			if h.Kind != "Namespace" && h.Metadata.Namespace != "continuum" {
				t.Errorf("%s: namespace %q, want continuum", where, h.Metadata.Namespace)
			}
			if h.Metadata.Labels["app.kubernetes.io/part-of"] != "continuum" {
				t.Errorf("%s: no app.kubernetes.io/part-of: continuum label", where)
			}
			key := h.Metadata.Name
			switch h.Kind {
			case "Namespace":
				m.namespaces[key] = strict[namespace](t, where, &doc)
			case "Secret":
				m.secrets[key] = strict[secret](t, where, &doc)
			case "PersistentVolumeClaim":
				m.pvcs[key] = strict[pvc](t, where, &doc)
			case "Service":
				m.services[key] = strict[service](t, where, &doc)
			case "Deployment":
				m.deployments[key] = strict[deployment](t, where, &doc)
			case "StatefulSet":
				m.statefulSets[key] = strict[statefulSet](t, where, &doc)
			case "PodDisruptionBudget":
				m.pdbs[key] = strict[podDisruptionBudget](t, where, &doc)
			}
			if path == "secrets.example.yaml" {
				m.exampleOnly[h.Kind+"/"+key] = true
			}
		}
	}
	return m
}

// strict decodes a document into T, failing on any field T does not know.
func strict[T any](t *testing.T, where string, doc *yaml.Node) T {
	t.Helper()
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&v); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	return v
}

func TestKinds(t *testing.T) {
	t.Parallel()
	m := load(t)
	if _, ok := m.namespaces["continuum"]; !ok {
		t.Error("no Namespace continuum")
	}
	for _, name := range []string{"router", "events", "genome", "audit", "gateway"} {
		if _, ok := m.deployments[name]; !ok {
			t.Errorf("no Deployment %s", name)
		}
	}
	if _, ok := m.statefulSets["hippocampus"]; !ok {
		t.Error("no StatefulSet hippocampus")
	}
	wantPorts := map[string]int{"router": 7400, "gateway": 8080}
	for name, port := range wantPorts {
		svc, ok := m.services[name]
		if !ok || !slices.ContainsFunc(svc.Spec.Ports, func(p servicePort) bool { return p.Port == port }) {
			t.Errorf("no Service %s on port %d", name, port)
		}
	}
	certs := m.secrets["continuum-certs"]
	if _, ok := certs.StringData["ca.crt"]; !ok {
		t.Error("Secret continuum-certs has no ca.crt")
	}
	if _, ok := certs.StringData["ca.key"]; !ok {
		t.Error("Secret continuum-certs has no ca.key")
	}
	if _, ok := m.secrets["continuum-tokens"].StringData["tokens.yaml"]; !ok {
		t.Error("Secret continuum-tokens has no tokens.yaml")
	}
}

// workload is a Deployment or a StatefulSet, as the checks see it.
type workload struct {
	kind, name string
	selector   labelSelector
	template   podTemplate
	// claims are the volume claim templates' names (StatefulSet).
	claims []string
}

func (m *manifests) workloads() []workload {
	var out []workload
	for name, d := range m.deployments {
		out = append(out, workload{kind: "Deployment", name: name, selector: d.Spec.Selector, template: d.Spec.Template})
	}
	for name, s := range m.statefulSets {
		w := workload{kind: "StatefulSet", name: name, selector: s.Spec.Selector, template: s.Spec.Template}
		for _, c := range s.Spec.VolumeClaimTemplates {
			w.claims = append(w.claims, c.Metadata.Name)
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func TestWorkloads(t *testing.T) {
	t.Parallel()
	m := load(t)
	varRef := regexp.MustCompile(`\$\(([A-Z_][A-Z0-9_]*)\)`)
	for _, w := range m.workloads() {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			spec := w.template.Spec
			for k, v := range w.selector.MatchLabels {
				if w.template.Metadata.Labels[k] != v {
					t.Errorf("selector %s=%s does not match the pod template's labels", k, v)
				}
			}
			sc := spec.SecurityContext
			if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 || sc.FSGroup == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
				t.Errorf("pod securityContext %+v: want non-root with an fsGroup and the RuntimeDefault seccomp profile", sc)
			}
			if len(spec.Containers) != 1 {
				t.Fatalf("%d containers, want 1", len(spec.Containers))
			}
			c := spec.Containers[0]
			if c.Image != "continuum:dev" || c.ImagePullPolicy != "IfNotPresent" {
				t.Errorf("image %q pull %q, want continuum:dev IfNotPresent", c.Image, c.ImagePullPolicy)
			}
			if len(c.Args) < 2 || c.Args[0] != "serve" || c.Args[1] != w.name {
				t.Errorf("args %q do not start with serve %s", c.Args, w.name)
			}
			flags := map[string]string{}
			var joins []string
			for _, a := range c.Args[2:] {
				name, value, ok := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if !strings.HasPrefix(a, "--") || !ok {
					t.Errorf("arg %q is not --flag=value", a)
				}
				if name == "join" {
					joins = append(joins, value)
				}
				flags[name] = value
			}
			for flag, want := range map[string]string{
				"listen": "0.0.0.0:7400", "advertise": "$(POD_IP):7400", "gossip": "0.0.0.0:7946",
				"gossip-advertise": "$(POD_IP):7946", "certs-dir": "/certs", "data": "/data", "tokens": "/tokens/tokens.yaml",
			} {
				if flags[flag] != want {
					t.Errorf("--%s=%q, want %q", flag, flags[flag], want)
				}
			}
			if flags["node"] == "" {
				t.Error("no --node")
			}
			if !slices.Contains(joins, "hippocampus-0.hippocampus-headless.continuum.svc.cluster.local:7946") {
				t.Errorf("--join %q does not name the hippocampus seed", joins)
			}
			env := map[string]envVar{}
			for _, e := range c.Env {
				env[e.Name] = e
			}
			for _, a := range c.Args {
				for _, ref := range varRef.FindAllStringSubmatch(a, -1) {
					if _, ok := env[ref[1]]; !ok {
						t.Errorf("arg %q uses $(%s), which env does not define", a, ref[1])
					}
				}
			}
			if e := env["POD_IP"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "status.podIP" {
				t.Error("POD_IP does not come from status.podIP")
			}
			if flags["node"] == "$(POD_NAME)" {
				if e := env["POD_NAME"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
					t.Error("POD_NAME does not come from metadata.name")
				}
			}
			for _, r := range []string{"cpu", "memory"} {
				if c.Resources.Requests[r] == "" || c.Resources.Limits[r] == "" {
					t.Errorf("no %s request and limit", r)
				}
			}
			ports := map[string]bool{}
			for _, p := range c.Ports {
				ports[p.Name] = true
			}
			for name, p := range map[string]*probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				switch {
				case p == nil:
					t.Errorf("no %s probe", name)
				case p.Exec != nil:
					if len(p.Exec.Command) < 2 || p.Exec.Command[0] != "/continuum" || p.Exec.Command[1] != "health" {
						t.Errorf("%s probe runs %q, want /continuum health", name, p.Exec.Command)
					}
				case p.HTTPGet != nil:
					if !ports[p.HTTPGet.Port] {
						t.Errorf("%s probe's port %q is not a container port", name, p.HTTPGet.Port)
					}
				default:
					t.Errorf("%s probe has no handler", name)
				}
			}
			csc := c.SecurityContext
			if csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
				!slices.Equal(csc.Capabilities.Drop, []string{"ALL"}) {
				t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, no capabilities", csc)
			}
			volumes := map[string]volume{}
			for _, v := range spec.Volumes {
				volumes[v.Name] = v
			}
			mounts := map[string]string{}
			for _, vm := range c.VolumeMounts {
				mounts[vm.MountPath] = vm.Name
				v, ok := volumes[vm.Name]
				switch {
				case slices.Contains(w.claims, vm.Name):
				case !ok:
					t.Errorf("mount %s: no volume %q", vm.MountPath, vm.Name)
				case v.Secret != nil:
					if _, ok := m.secrets[v.Secret.SecretName]; !ok {
						t.Errorf("volume %s: no Secret %q", v.Name, v.Secret.SecretName)
					}
					if !vm.ReadOnly {
						t.Errorf("secret volume %s is mounted read-write", v.Name)
					}
				case v.PersistentVolumeClaim != nil:
					if _, ok := m.pvcs[v.PersistentVolumeClaim.ClaimName]; !ok {
						t.Errorf("volume %s: no PersistentVolumeClaim %q", v.Name, v.PersistentVolumeClaim.ClaimName)
					}
				case v.EmptyDir != nil:
				default:
					t.Errorf("volume %s has no source", v.Name)
				}
			}
			for _, path := range []string{"/certs", "/tokens", "/data"} {
				if mounts[path] == "" {
					t.Errorf("nothing mounted at %s", path)
				}
			}
		})
	}
}

func TestHippocampus(t *testing.T) {
	t.Parallel()
	m := load(t)
	sts := m.statefulSets["hippocampus"]
	headless, ok := m.services[sts.Spec.ServiceName]
	if sts.Spec.ServiceName != "hippocampus-headless" || !ok || headless.Spec.ClusterIP != "None" || !headless.Spec.PublishNotReadyAddresses {
		t.Errorf("serviceName %q: want the headless Service hippocampus-headless, publishing not-ready addresses", sts.Spec.ServiceName)
	}
	args := sts.Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--node=$(POD_NAME)") {
		t.Errorf("args %q: want the node named after the pod", args)
	}
	if len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests["storage"] == "" {
		t.Error("want one volume claim template with a storage request")
	}
	if pdb, ok := m.pdbs["hippocampus"]; !ok || pdb.Spec.MaxUnavailable != 1 {
		t.Error("want a PodDisruptionBudget of one member at a time")
	}
}

func TestServicesSelectPods(t *testing.T) {
	t.Parallel()
	m := load(t)
	for name, svc := range m.services {
		var selected []workload
		for _, w := range m.workloads() {
			match := len(svc.Spec.Selector) > 0
			for k, v := range svc.Spec.Selector {
				if w.template.Metadata.Labels[k] != v {
					match = false
				}
			}
			if match {
				selected = append(selected, w)
			}
		}
		if len(selected) == 0 {
			t.Errorf("Service %s selects no pods", name)
			continue
		}
		for _, p := range svc.Spec.Ports {
			for _, w := range selected {
				if !slices.ContainsFunc(w.template.Spec.Containers[0].Ports, func(cp struct {
					Name          string `yaml:"name"`
					ContainerPort int    `yaml:"containerPort"`
					Protocol      string `yaml:"protocol"`
				},
				) bool {
					return cp.Name == p.TargetPort && cp.ContainerPort == p.Port && cp.Protocol == p.Protocol
				}) {
					t.Errorf("Service %s port %s: %s %s has no %s port %d named %q", name, p.Name, w.kind, w.name, p.Protocol, p.Port, p.TargetPort)
				}
			}
		}
	}
}

func TestKustomization(t *testing.T) {
	t.Parallel()
	m := load(t)
	b, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&k); err != nil {
		t.Fatal(err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization is %s %s", k.APIVersion, k.Kind)
	}
	var want []string
	for _, f := range m.files {
		if f != "secrets.example.yaml" {
			want = append(want, f)
		}
	}
	got := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(got, want) {
		t.Errorf("resources %q, want every manifest but the example secrets: %q", got, want)
	}
}

// TestFlagsExist: every flag the manifests pass to continuum is one the
// binary defines (cmd/continuum).
func TestFlagsExist(t *testing.T) {
	t.Parallel()
	// Flags the binary is yet to define, and what they are for.
	pending := map[string]string{
		"http": "the gateway's HTTP listener, which cmd/continuum wires with the gateway",
	}
	defined := map[string]bool{}
	decl := regexp.MustCompile(`fs\.(?:String|Bool|Duration|Int)?(?:Var)?\((?:&[\w.]+,\s*)?"([a-z][a-z-]*)"`)
	srcs, err := filepath.Glob(filepath.Join("..", "..", "cmd", "continuum", "*.go"))
	if err != nil || len(srcs) == 0 {
		t.Fatalf("no cmd/continuum sources: %v", err)
	}
	for _, src := range srcs {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
	}
	m := load(t)
	for _, w := range m.workloads() {
		c := w.template.Spec.Containers[0]
		args := slices.Clone(c.Args[2:])
		for _, p := range []*probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
			if p != nil && p.Exec != nil {
				args = append(args, p.Exec.Command[2:]...)
			}
		}
		for _, a := range args {
			if !strings.HasPrefix(a, "--") {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			switch {
			case defined[name]:
			case pending[name] != "":
				t.Logf("%s %s: --%s is not defined by cmd/continuum yet (%s)", w.kind, w.name, name, pending[name])
			default:
				t.Errorf("%s %s: --%s is not a flag of cmd/continuum", w.kind, w.name, name)
			}
		}
	}
}
