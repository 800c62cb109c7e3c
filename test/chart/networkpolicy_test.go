package chart

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// peer is one end of a connection: a pod (namespace and labels) or an address outside the
// cluster (ip only).
type peer struct {
	namespace string
	labels    map[string]string
	ip        string
}

func (p peer) traffic() *matcher.TrafficPeer {
	if p.namespace == "" {
		return &matcher.TrafficPeer{IP: p.ip}
	}
	return &matcher.TrafficPeer{IP: p.ip, Internal: &matcher.InternalPeer{
		Namespace:       p.namespace,
		NamespaceLabels: namespaceLabels[p.namespace],
		PodLabels:       p.labels,
	}}
}

// namespaceLabels are the labels of the namespaces in the connectivity tables: the API server sets
// kubernetes.io/metadata.name on every namespace, the operator the tenant label on its tenants'.
var namespaceLabels = map[string]map[string]string{
	releaseNamespace: {"kubernetes.io/metadata.name": releaseNamespace},
	"tenant-acme":    {"kubernetes.io/metadata.name": "tenant-acme", builders.LabelTenant: "acme"},
	"kube-system":    {"kubernetes.io/metadata.name": "kube-system"},
	"monitoring":     {"kubernetes.io/metadata.name": "monitoring"},
	"default":        {"kubernetes.io/metadata.name": "default"},
}

// podLabelsOf are the labels of the pods a builder's CronJob runs.
func podLabelsOf(t *testing.T, cronJob any) map[string]string {
	t.Helper()
	data, err := json.Marshal(cronJob)
	if err != nil {
		t.Fatal(err)
	}
	cj := &batchv1.CronJob{}
	if err := json.Unmarshal(data, cj); err != nil {
		t.Fatal(err)
	}
	return cj.Spec.JobTemplate.Spec.Template.Labels
}

// TestOperatorNamespaceNetworkPolicies evaluates, with cyclonus' NetworkPolicy semantics, the
// policies the chart installs in the operator's namespace (with its default values, which
// config/default equals) together with a tenant's firewall, over a table of connections. The
// operator's and the jobs' pod labels come from the chart's Deployment and the builders' CronJobs,
// so the policies are checked against the pods that really run.
func TestOperatorNamespaceNetworkPolicies(t *testing.T) {
	objs := render(t, valueSets[0])
	var policies []*networkingv1.NetworkPolicy
	for _, obj := range only(objs, "NetworkPolicy") {
		policies = append(policies, typed[networkingv1.NetworkPolicy](t, obj))
	}
	if len(policies) != 3 {
		t.Fatalf("the chart installs %d NetworkPolicies, want 3 (operator, backup, verify)", len(policies))
	}
	opts := builders.DefaultOptions()
	opts.OperatorNamespace = releaseNamespace
	tenant := &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "0b7e2c61-5a3f-4d4e-9d1a-2f6c0e8b9a10"},
		Spec: v1alpha1.TenantSpec{
			Hostnames: []string{"acme.example.com"},
			Database:  v1alpha1.DatabaseSpec{Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}},
		},
	}
	for _, p := range builders.NetworkPolicies(tenant, opts) {
		data, _ := json.Marshal(p)
		np := &networkingv1.NetworkPolicy{}
		if err := json.Unmarshal(data, np); err != nil {
			t.Fatal(err)
		}
		policies = append(policies, np)
	}
	evaluated := matcher.BuildNetworkPolicies(true, policies)

	policy := &v1alpha1.BackupPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "standard"},
		Spec: v1alpha1.BackupPolicySpec{
			Schedules: []v1alpha1.BackupSchedule{{Name: "hot", Schedule: "@daily", Storage: v1alpha1.BackupStorage{S3: &v1alpha1.S3Storage{
				Endpoint: "s3.example.com", Bucket: "hot", Region: "eu-west-1", CredentialsSecretRef: v1alpha1.SecretReference{Name: "s3"}}}}},
			Encryption: v1alpha1.BackupEncryption{
				Recipients:        []string{"age1qmplsxqs2smjrp0kagrvhmyzwtk0ry2v2el6zpnefqampxq6gqnqkv08lz"},
				IdentitySecretRef: &v1alpha1.SecretKeyReference{Name: "identity", Key: "identity"},
			},
			Verification: &v1alpha1.BackupVerification{Schedule: "@weekly"},
		},
	}
	backupJob, err := builders.BackupCronJob(tenant, policy, policy.Spec.Schedules[0], 24*time.Hour, opts)
	if err != nil {
		t.Fatal(err)
	}
	verifyJob, err := builders.VerifyCronJob(tenant, policy, policy.Spec.Schedules[0], 7*24*time.Hour, opts)
	if err != nil {
		t.Fatal(err)
	}
	deployment := typed[appsv1.Deployment](t, one(t, objs, "Deployment"))

	operator := peer{namespace: releaseNamespace, labels: deployment.Spec.Template.Labels, ip: "10.1.0.5"}
	backup := peer{namespace: releaseNamespace, labels: podLabelsOf(t, backupJob), ip: "10.1.0.6"}
	verify := peer{namespace: releaseNamespace, labels: podLabelsOf(t, verifyJob), ip: "10.1.0.7"}
	db := peer{namespace: "tenant-acme", labels: map[string]string{builders.LabelTenant: "acme", builders.LabelComponent: "database", builders.LabelDatabasePod: "true"}, ip: "10.2.0.20"}
	app := peer{namespace: "tenant-acme", labels: map[string]string{"app": "web"}, ip: "10.2.0.10"}
	dns := peer{namespace: "kube-system", labels: map[string]string{"k8s-app": "kube-dns"}, ip: "10.96.0.10"}
	prometheus := peer{namespace: "monitoring", labels: map[string]string{"app": "prometheus"}, ip: "10.3.0.9"}
	randomPod := peer{namespace: "default", labels: map[string]string{"app": "curl"}, ip: "10.4.0.10"}
	apiServer := peer{ip: "172.20.0.2"} // a control-plane node
	s3 := peer{ip: "198.51.100.20"}
	metadata := peer{ip: "169.254.169.254"}

	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	tests := []struct {
		name     string
		from, to peer
		port     int
		protocol corev1.Protocol
		allowed  bool
	}{
		{"API server to the webhook", apiServer, operator, 9443, tcp, true},
		{"kubelet to the health port", apiServer, operator, 8081, tcp, true},
		{"Prometheus to the metrics port", prometheus, operator, 8443, tcp, true},
		{"a tenant's pod to the metrics port", app, operator, 8443, tcp, false},
		{"a random pod to the metrics port", randomPod, operator, 8443, tcp, false},
		{"a tenant's pod to another port of the operator", app, operator, 8080, tcp, false},
		{"operator to DNS", operator, dns, 53, udp, true},
		{"operator to the API server", operator, apiServer, 6443, tcp, true},
		{"operator to a tenant database", operator, db, 5432, tcp, true},
		{"operator to S3 and probed URLs", operator, s3, 443, tcp, true},
		{"operator to a tenant's app directly", operator, app, 8080, tcp, false},
		{"operator to the metadata service", operator, metadata, 80, tcp, false},
		{"operator over SSH anywhere", operator, s3, 22, tcp, false},
		{"backup job to DNS", backup, dns, 53, udp, true},
		{"backup job to the tenant database", backup, db, 5432, tcp, true},
		{"backup job to S3", backup, s3, 443, tcp, true},
		{"backup job to the tenant's app", backup, app, 8080, tcp, false},
		{"backup job to the API server's other port", backup, apiServer, 6443, tcp, false},
		{"backup job to the metadata service", backup, metadata, 80, tcp, false},
		{"a tenant's pod to a backup job", app, backup, 8080, tcp, false},
		{"the operator to a backup job", operator, backup, 8080, tcp, false},
		{"verify job to S3", verify, s3, 443, tcp, true},
		{"verify job to DNS", verify, dns, 53, udp, true},
		{"verify job to the tenant database", verify, db, 5432, tcp, false},
		{"verify job to the API server's other port", verify, apiServer, 6443, tcp, false},
		{"a tenant's pod to a verify job", app, verify, 5432, tcp, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			result := evaluated.IsTrafficAllowed(&matcher.Traffic{
				Source: tt.from.traffic(), Destination: tt.to.traffic(), ResolvedPort: tt.port, Protocol: tt.protocol,
			})
			if got := result.IsAllowed(); got != tt.allowed {
				t.Fatalf("%s/%v -> %s/%v:%d/%s: allowed = %v, want %v\n%s", tt.from.namespace, tt.from.ip, tt.to.namespace, tt.to.ip,
					tt.port, tt.protocol, got, tt.allowed, result.Table())
			}
		})
	}

	// The operator's policy follows the chart's ports and metrics namespace.
	custom := helmTemplate(t, nil, "--set", "webhook.port=10250", "--set", "metrics.port=9090",
		"--set", "networkPolicy.metricsNamespaceSelector.matchLabels.team=observability",
		"--set", "networkPolicy.apiServer.cidrs={172.20.0.0/24}", "--set", "networkPolicy.egressPorts={443,9000}")
	var ports []string
	for _, obj := range only(custom, "NetworkPolicy") {
		np := typed[networkingv1.NetworkPolicy](t, obj)
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				ports = append(ports, fmt.Sprintf("%s in %s", np.Name, p.Port.String()))
			}
		}
		for _, r := range np.Spec.Egress {
			for _, p := range r.Ports {
				ports = append(ports, fmt.Sprintf("%s out %s %d", np.Name, p.Port.String(), len(r.To)))
			}
		}
	}
	for _, want := range []string{"tenant-operator in 10250", "tenant-operator in 9090", "tenant-operator out 6443 1",
		"tenant-operator out 9000 0", "tenant-operator-backup out 9000 0", "tenant-operator-verify out 9000 0"} {
		if !slices.Contains(ports, want) {
			t.Errorf("with custom values the policies' ports are %v, want %q among them", ports, want)
		}
	}
	if got := len(only(helmTemplate(t, nil, "--set", "networkPolicy.enabled=false"), "NetworkPolicy")); got != 0 {
		t.Errorf("networkPolicy.enabled=false still renders %d NetworkPolicies", got)
	}
}
