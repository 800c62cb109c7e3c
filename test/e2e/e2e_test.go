package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// fieldOwner is the field manager of what the tests apply.
const fieldOwner = client.FieldOwner("tenantops-e2e")

// A tenant goes Ready with its certificate really issued by cert-manager; deleted with Retain and
// created again, it gets back the same namespace, volume and database password.
func TestTenantReadyCertificateAndRetain(t *testing.T) {
	s := requireStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	manifest := filepath.Join("testdata", "tenant.yaml")
	if err := s.ApplyFile(ctx, manifest); err != nil {
		t.Fatalf("apply %s: %v", manifest, err)
	}
	tenant := s.waitReady(ctx, t, "e2e")
	ns := tenant.Status.Namespace
	if ns != "tenant-e2e" {
		t.Fatalf("status.namespace = %q, want tenant-e2e", ns)
	}

	// The certificate for the hostnames, issued: the Secret holds a certificate for them, and the
	// Tenant reports its expiry.
	if tenant.Status.Certificate == nil || tenant.Status.Certificate.NotAfter == nil {
		t.Fatalf("status.certificate.notAfter not set: %+v", tenant.Status.Certificate)
	}
	cert := &cmapi.Certificate{}
	certs := &cmapi.CertificateList{}
	if err := s.Client.List(ctx, certs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for i := range certs.Items {
		if certs.Items[i].Spec.SecretName == tenant.Status.Certificate.SecretName {
			cert = &certs.Items[i]
		}
	}
	if cert.Status.NotAfter == nil || !cert.Status.NotAfter.Equal(tenant.Status.Certificate.NotAfter) {
		t.Errorf("Certificate %q notAfter %v, Tenant says %v", cert.Name, cert.Status.NotAfter, tenant.Status.Certificate.NotAfter)
	}
	tlsSecret := &corev1.Secret{}
	s.get(ctx, t, types.NamespacedName{Namespace: ns, Name: tenant.Status.Certificate.SecretName}, tlsSecret)
	leaf := parseCertificate(t, tlsSecret.Data[corev1.TLSCertKey])
	if !slices.Contains(leaf.DNSNames, "e2e.app.example.com") {
		t.Errorf("issued certificate is for %v, want e2e.app.example.com among them", leaf.DNSNames)
	}
	if !leaf.NotAfter.Equal(tenant.Status.Certificate.NotAfter.Time) {
		t.Errorf("issued certificate expires %v, status.certificate.notAfter says %v", leaf.NotAfter, tenant.Status.Certificate.NotAfter)
	}
	if len(tlsSecret.Data[corev1.TLSPrivateKeyKey]) == 0 {
		t.Error("issued certificate's Secret has no tls.key")
	}

	// What Retain must keep.
	before := s.retained(ctx, t, tenant)
	t.Logf("Before delete: namespace uid %s, claim %s uid %s on volume %s", before.namespaceUID, before.claim, before.claimUID, before.volume)

	if err := s.Client.Delete(ctx, tenant); err != nil {
		t.Fatalf("delete Tenant: %v", err)
	}
	s.waitGone(ctx, t, tenant)
	namespace := &corev1.Namespace{}
	s.get(ctx, t, types.NamespacedName{Name: ns}, namespace)
	if !namespace.DeletionTimestamp.IsZero() {
		t.Fatalf("namespace %s is being deleted after a Retain delete", ns)
	}
	if namespace.Labels["tenancy.tenantops.io/retained"] != "true" {
		t.Errorf("retained namespace %s lacks the retained label: %v", ns, namespace.Labels)
	}
	// The database stops: its StatefulSet scaled to zero, its pod gone; the claim stays.
	s.waitDatabasePods(ctx, t, ns, 0)
	t.Logf("Tenant deleted; namespace %s kept, database stopped", ns)

	if err := s.ApplyFile(ctx, manifest); err != nil {
		t.Fatalf("apply %s again: %v", manifest, err)
	}
	// A new Tenant of the same name is another customer until told otherwise: it does not take
	// the retained data silently, and says how to.
	deadline := time.Now().Add(time.Minute)
	for {
		recreated := &v1alpha1.Tenant{}
		s.get(ctx, t, types.NamespacedName{Name: "e2e"}, recreated)
		c := meta.FindStatusCondition(recreated.Status.Conditions, v1alpha1.ConditionNamespaceReady)
		if c != nil && c.Reason == v1alpha1.ReasonRetainedNamespace && strings.Contains(c.Message, v1alpha1.AnnotationAdoptNamespace) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recreated Tenant: NamespaceReady %+v, want RetainedNamespace naming the adopt annotation", c)
		}
		time.Sleep(500 * time.Millisecond)
	}
	adopt := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"`+v1alpha1.AnnotationAdoptNamespace+`":"true"}}}`))
	if err := s.Client.Patch(ctx, &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "e2e"}}, adopt); err != nil {
		t.Fatalf("annotate the Tenant to adopt its namespace: %v", err)
	}
	again := s.waitReady(ctx, t, "e2e")
	// Ready means the database runs again, on the same claim.
	pod := s.waitDatabasePods(ctx, t, ns, 1)
	var claims []string
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claims = append(claims, v.PersistentVolumeClaim.ClaimName)
		}
	}
	after := s.retained(ctx, t, again)
	if !slices.Contains(claims, before.claim) {
		t.Errorf("database pod %s mounts claims %v, want %s", pod.Name, claims, before.claim)
	}
	if after != before {
		t.Errorf("after delete and recreate:\n got %+v\nwant %+v", after, before)
	}
}

// waitDatabasePods waits until the database StatefulSet of namespace ns wants replicas pods and
// has that many, all Ready, and returns the first.
func (s *Stack) waitDatabasePods(ctx context.Context, t *testing.T, ns string, replicas int32) *corev1.Pod {
	t.Helper()
	start, last := time.Now(), ""
	for {
		sts := &appsv1.StatefulSet{}
		s.get(ctx, t, types.NamespacedName{Namespace: ns, Name: "postgres"}, sts)
		pods := &corev1.PodList{}
		if err := s.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels(sts.Spec.Selector.MatchLabels)); err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && p.DeletionTimestamp.IsZero() {
					ready++
				}
			}
		}
		want := sts.Spec.Replicas != nil && *sts.Spec.Replicas == replicas
		now := fmt.Sprintf("statefulset %s/postgres wants %v replicas, %d pods, %d ready", ns, ptrValue(sts.Spec.Replicas), len(pods.Items), ready)
		if want && len(pods.Items) == int(replicas) && ready == int(replicas) {
			t.Logf("%5.1fs %s", time.Since(start).Seconds(), now)
			if replicas == 0 {
				return nil
			}
			return &pods.Items[0]
		}
		if now != last {
			t.Logf("%5.1fs %s", time.Since(start).Seconds(), now)
			last = now
		}
		select {
		case <-ctx.Done():
			t.Fatalf("want %d database pods Ready: %s", replicas, now)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// A manifest the CRD's schema accepts but the webhook refuses is rejected at admission, with a
// message naming the field.
func TestBadManifestRejectedByWebhook(t *testing.T) {
	s := requireStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := s.ApplyFile(ctx, filepath.Join("testdata", "bad-tenant.yaml"))
	if err == nil {
		t.Fatal("bad manifest accepted")
	}
	msg := err.Error()
	for _, want := range []string{`admission webhook "vtenant.tenancy.tenantops.io" denied the request`, "spec.monitoring.businessHours.timeZone", "Mars/Olympus"} {
		if !strings.Contains(msg, want) {
			t.Errorf("rejection %q does not contain %q", msg, want)
		}
	}
	if err := s.Client.Get(ctx, types.NamespacedName{Name: "e2e-bad"}, &v1alpha1.Tenant{}); !apierrors.IsNotFound(err) {
		t.Errorf("rejected Tenant exists or cannot be read: %v", err)
	}
}

// retainedState is what a Retain delete must keep.
type retainedState struct {
	namespaceUID, claim, claimUID, volume string
	password                              string
}

func (s *Stack) retained(ctx context.Context, t *testing.T, tenant *v1alpha1.Tenant) retainedState {
	t.Helper()
	ns := tenant.Status.Namespace
	namespace := &corev1.Namespace{}
	s.get(ctx, t, types.NamespacedName{Name: ns}, namespace)
	claims := &corev1.PersistentVolumeClaimList{}
	if err := s.Client.List(ctx, claims, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(claims.Items) != 1 {
		t.Fatalf("%d volume claims in %s, want the database's one", len(claims.Items), ns)
	}
	claim := claims.Items[0]
	if claim.Status.Phase != corev1.ClaimBound || claim.Spec.VolumeName == "" {
		t.Fatalf("volume claim %s is %s, not bound", claim.Name, claim.Status.Phase)
	}
	if tenant.Status.Database == nil || tenant.Status.Database.SecretName == "" {
		t.Fatalf("status.database.secretName not set: %+v", tenant.Status.Database)
	}
	secret := &corev1.Secret{}
	s.get(ctx, t, types.NamespacedName{Namespace: ns, Name: tenant.Status.Database.SecretName}, secret)
	if len(secret.Data["password"]) == 0 {
		t.Fatalf("database Secret %s has no password", secret.Name)
	}
	return retainedState{
		namespaceUID: string(namespace.UID),
		claim:        claim.Name,
		claimUID:     string(claim.UID),
		volume:       claim.Spec.VolumeName,
		password:     string(secret.Data["password"]),
	}
}

// waitReady waits for the Tenant to be Ready for its current generation, logging its progress.
func (s *Stack) waitReady(ctx context.Context, t *testing.T, name string) *v1alpha1.Tenant {
	t.Helper()
	start, last := time.Now(), ""
	for {
		tenant := &v1alpha1.Tenant{}
		err := s.Client.Get(ctx, types.NamespacedName{Name: name}, tenant)
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatalf("get Tenant %s: %v", name, err)
		}
		ready := meta.FindStatusCondition(tenant.Status.Conditions, v1alpha1.ConditionReady)
		now := "not reconciled yet"
		if ready != nil {
			now = fmt.Sprintf("%s %s: %s", ready.Status, ready.Reason, ready.Message)
			if ready.Status == "True" && ready.ObservedGeneration == tenant.Generation {
				t.Logf("%5.1fs Tenant %s Ready", time.Since(start).Seconds(), name)
				return tenant
			}
		}
		if now != last {
			t.Logf("%5.1fs Tenant %s: %s", time.Since(start).Seconds(), name, now)
			last = now
		}
		select {
		case <-ctx.Done():
			t.Fatalf("Tenant %s not Ready: %s", name, now)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// waitGone waits until the object no longer exists.
func (s *Stack) waitGone(ctx context.Context, t *testing.T, obj client.Object) {
	t.Helper()
	for {
		err := s.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return
		}
		if err != nil {
			t.Fatalf("get %s: %v", obj.GetName(), err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s still there, finalizers %v", obj.GetName(), obj.GetFinalizers())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (s *Stack) get(ctx context.Context, t *testing.T, key types.NamespacedName, obj client.Object) {
	t.Helper()
	if err := s.Client.Get(ctx, key, obj); err != nil {
		t.Fatalf("get %T %s: %v", obj, key, err)
	}
}

func parseCertificate(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("tls.crt holds no PEM certificate: %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("parse tls.crt: %v", err)
	}
	return cert
}
