package controllers

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/metrics"
)

// Two processes may both find a tenant's credentials missing: replicas during a handover, or
// shards while their count changes. The one that writes second must not replace the password
// the first wrote, which the database is (or will be) initialized with.
func TestAGeneratedPasswordIsNeverReplaced(t *testing.T) {
	ctx := context.Background()
	tenant := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "acme", UID: "uid-1", Generation: 1}}
	name := builders.DatabaseSecretName(tenant)
	theirs := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: builders.NamespaceName(tenant), Name: name},
		Data: map[string][]byte{builders.SecretKeyPassword: []byte("written-by-the-other-process")}}
	c := withTenantIndexes(fake.NewClientBuilder()).WithScheme(testScheme(t)).WithObjects(tenant, theirs).Build()
	r, err := NewTenantReconciler(c, c, nil, Options{Options: builders.Options{OperatorNamespace: "tenant-operator-system"},
		DisableUptimeProbes: true, Metrics: metrics.New(prometheus.NewRegistry())})
	if err != nil {
		t.Fatal(err)
	}
	build := func(p string) runtime.ApplyConfiguration { return builders.DatabaseSecret(tenant, p) }

	// namespaceNew skips the look, as a process that looked before the other one wrote.
	created, err := r.ensureGeneratedSecret(ctx, tenant, name, true, build)
	if err != nil || created {
		t.Fatalf("ensureGeneratedSecret over an existing Secret = %v, %v; want not created, no error", created, err)
	}
	got := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(theirs), got); err != nil {
		t.Fatal(err)
	}
	if p := string(got.Data[builders.SecretKeyPassword]); p != "written-by-the-other-process" {
		t.Fatalf("the existing password was replaced by %q", p)
	}

	// Where there is none, one is created: 32 random bytes, base64.
	if err := c.Delete(ctx, got); err != nil {
		t.Fatal(err)
	}
	created, err = r.ensureGeneratedSecret(ctx, tenant, name, false, build)
	if err != nil || !created {
		t.Fatalf("ensureGeneratedSecret with no Secret = %v, %v; want created", created, err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(theirs), got); err != nil {
		t.Fatal(err)
	}
	if p := got.Data[builders.SecretKeyPassword]; len(p) != 43 || string(p) == "written-by-the-other-process" {
		t.Fatalf("generated password %q, want 43 characters of base64", p)
	}
}
