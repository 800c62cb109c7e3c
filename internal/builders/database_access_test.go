package builders

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/test/controlplane"
)

// TestDatabaseSuperuserHasNoSecret: nothing the builders put in a tenant's namespace carries a
// password for the database superuser, and the pod's pg_hba.conf lets it in by peer on the socket
// only.
func TestDatabaseSuperuserHasNoSecret(t *testing.T) {
	tenant := full()
	sts := typed[appsv1.StatefulSet](t, DatabaseStatefulSet(tenant, testOptions()))
	allowed := map[string]bool{
		DatabaseSecretName(tenant) + "/" + SecretKeyPassword:             true, // app's, the tenant's own
		DatabaseSecretName(tenant) + "/" + SecretKeyDatabase:             true,
		DatabaseBackupSecretName(tenant) + "/" + BackupSecretKeyPassword: true,
		DatabaseProbeSecretName(tenant) + "/" + ProbeSecretKeyVerifier:   true,
	}
	for _, c := range sts.Spec.Template.Spec.Containers {
		for _, e := range c.Env {
			if e.Name == "POSTGRES_USER" || e.Name == "POSTGRES_PASSWORD" || e.Name == "PGPASSWORD" {
				t.Errorf("container %s sets %s", c.Name, e.Name)
			}
			if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && !allowed[ref.SecretKeyRef.Name+"/"+ref.SecretKeyRef.Key] {
				t.Errorf("container %s reads %s from secret %s key %s", c.Name, e.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
			}
			if e.Name == "POSTGRES_PASSWORD_FILE" && e.Value != "/proc/sys/kernel/random/uuid" {
				t.Errorf("POSTGRES_PASSWORD_FILE = %q", e.Value)
			}
			if e.Name == "PGUSER" && e.Value != "postgres" {
				t.Errorf("container %s connects as %q", c.Name, e.Value)
			}
		}
		if len(c.EnvFrom) != 0 {
			t.Errorf("container %s has envFrom", c.Name)
		}
	}
	if !strings.Contains(strings.Join(sts.Spec.Template.Spec.Containers[0].Args, " "), "hba_file="+configMount+"/pg_hba.conf") {
		t.Error("the server does not read the operator's pg_hba.conf")
	}
	var postgresLines []string
	for _, line := range strings.Split(DatabaseHBA(), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == "postgres" {
			postgresLines = append(postgresLines, f[0]+" "+f[len(f)-1])
		}
		if len(f) >= 4 && f[2] == "all" && f[0] != "local" {
			// every network line for every role comes after postgres's rejects
			if len(postgresLines) < 3 {
				t.Errorf("a network line for all roles precedes postgres's reject: %q", line)
			}
		}
	}
	if strings.Join(postgresLines, ",") != "local peer,hostssl reject,hostssl reject" {
		t.Errorf("pg_hba.conf lines for postgres: %v", postgresLines)
	}
}

// TestTenantAdminCannotReachTheDatabaseSuperuser acts as a tenant admin (the built-in admin role
// in the tenant namespace, as RoleBindings grant it) on a real API server with the admission
// policy of config/policies: exec and attach into the database pod, changing it, and mounting its
// volume from a pod or a workload are refused by the policy, while the admin still execs into
// its own pods and mounts its own volumes.
func TestTenantAdminCannotReachTheDatabaseSuperuser(t *testing.T) {
	env, err := controlplane.Start(controlplane.Options{ControllerManager: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	k8s, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	installPolicy(t, k8s)

	tenant := minimal()
	tenant.Spec.Access.Admins = []rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "ada"}}
	ns := NamespaceName(tenant)
	for _, obj := range []client.Object{typed[corev1.Namespace](t, Namespace(tenant)), typed[rbacv1.RoleBinding](t, RoleBindings(tenant)[0])} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	sts := typed[appsv1.StatefulSet](t, DatabaseStatefulSet(tenant, testOptions()))
	dbPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: DatabaseName(tenant) + "-0", Namespace: ns, Labels: sts.Spec.Template.Labels}, Spec: sts.Spec.Template.Spec}
	dbPod.Spec.Volumes = append(dbPod.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-" + DatabaseName(tenant) + "-0"}}})
	own := plainPod(ns, "worker", "")
	for _, p := range []*corev1.Pod{dbPod, own} {
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}

	adminUser, err := env.Environment.ControlPlane.AddUser(envtest.User{Name: "ada"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := client.New(adminUser.Config(), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clientset, err := kubernetes.NewForConfig(adminUser.Config())
	if err != nil {
		t.Fatal(err)
	}
	connect := func(pod, sub string) error {
		return clientset.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod).SubResource(sub).
			Param("container", "postgres").Param("command", "sh").Param("stdout", "true").Do(ctx).Error()
	}
	// The policy loads asynchronously: wait until it refuses the first attempt.
	const refused = "is refused: the database superuser logs in on its local socket"
	deadline := time.Now().Add(30 * time.Second)
	for err := connect(dbPod.Name, "exec"); err == nil || !strings.Contains(err.Error(), refused); err = connect(dbPod.Name, "exec") {
		if time.Now().After(deadline) {
			t.Fatalf("exec into the database pod: %v, want the policy's refusal", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := connect(dbPod.Name, "attach"); err == nil || !strings.Contains(err.Error(), refused) {
		t.Errorf("attach to the database pod: %v, want the policy's refusal", err)
	}
	// RBAC lets the admin exec; only the database pod is refused: into its own pod the request
	// passes admission and fails only for want of a node.
	if err := connect(own.Name, "exec"); err == nil || strings.Contains(err.Error(), "refused") || strings.Contains(err.Error(), "forbidden") {
		t.Errorf("exec into the tenant's own pod: %v, want it past RBAC and admission", err)
	}

	// Changing the database pod (an image swap) or adding an ephemeral container.
	swapped := dbPod.DeepCopy()
	if err := admin.Get(ctx, client.ObjectKeyFromObject(dbPod), swapped); err != nil {
		t.Fatal(err)
	}
	swapped.Spec.Containers[0].Image = "attacker.example/postgres-with-a-shell"
	if err := admin.Update(ctx, swapped); err == nil || !strings.Contains(err.Error(), "managed by tenant-operator") {
		t.Errorf("swap the database pod's image: %v, want refused", err)
	}
	debug := swapped.DeepCopy()
	debug.Spec.Containers[0].Image = dbPod.Spec.Containers[0].Image
	debug.Spec.EphemeralContainers = []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debug", Image: "busybox", Command: []string{"sh"}}, TargetContainerName: "postgres"}}
	if err := admin.SubResource("ephemeralcontainers").Update(ctx, debug); err == nil {
		t.Error("an ephemeral container was added to the database pod")
	}

	// The database volume, from a pod or from any workload's template; other volumes stay free.
	claim := "data-" + DatabaseName(tenant) + "-0"
	template := plainPod(ns, "thief", claim)
	for _, obj := range []client.Object{
		template,
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "thief", Namespace: ns}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "thief"}},
			Template: podTemplate(template, corev1.RestartPolicyAlways)}},
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "thief", Namespace: ns}, Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "thief"}},
			Template: podTemplate(template, corev1.RestartPolicyAlways)}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "thief", Namespace: ns}, Spec: batchv1.JobSpec{Template: podTemplate(template, corev1.RestartPolicyNever)}},
		&batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "thief", Namespace: ns}, Spec: batchv1.CronJobSpec{Schedule: "@daily",
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate(template, corev1.RestartPolicyNever)}}}},
	} {
		err := admin.Create(ctx, obj, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "may not mount the database volume") {
			t.Errorf("%T mounting %s: %v, want the policy's refusal", obj, claim, err)
		}
	}
	if err := admin.Create(ctx, plainPod(ns, "uploader", "uploads"), client.DryRunAll); err != nil {
		t.Errorf("a pod mounting the tenant's own claim: %v", err)
	}
}

// installPolicy creates the admission policy and its binding from config/policies.
func installPolicy(t *testing.T, k8s client.Client) {
	t.Helper()
	root, err := controlplane.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "policies", "protect-tenant-objects.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
			t.Fatal(err)
		}
		if err := k8s.Create(context.Background(), u); err != nil {
			t.Fatalf("install %s: %v", u.GetName(), err)
		}
	}
}

// plainPod passes Pod Security restricted and mounts claim when given.
func plainPod(ns, name, claim string) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
		Spec: corev1.PodSpec{
			RestartPolicy:   corev1.RestartPolicyNever,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](1000), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sleep", "3600"},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
		},
	}
	if claim != "" {
		pod.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/data"}}
	}
	return pod
}

func podTemplate(p *corev1.Pod, restart corev1.RestartPolicy) corev1.PodTemplateSpec {
	spec := p.Spec.DeepCopy()
	spec.RestartPolicy = restart
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: p.Labels}, Spec: *spec}
}
