package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// certificateSays is a readiness test: CertificateReady False with the reason given (any, when
// empty).
func certificateSays(reason string) func(*v1alpha1.Tenant) (bool, string) {
	return func(t *v1alpha1.Tenant) (bool, string) {
		c := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionCertificateReady)
		ready := meta.FindStatusCondition(t.Status.Conditions, v1alpha1.ConditionReady)
		switch {
		case c == nil || ready == nil:
			return false, "no CertificateReady or Ready yet"
		case c.Status != metav1.ConditionFalse || (reason != "" && c.Reason != reason):
			return false, fmt.Sprintf("CertificateReady %s %s: %s, want False %s", c.Status, c.Reason, c.Message, reason)
		case ready.Status != metav1.ConditionFalse:
			return false, "Ready is not False while the certificate is not issued"
		}
		return true, ""
	}
}

// cert-manager's controllers stopped while tenants are created: they say their certificate is
// not issued, and go Ready once it runs again. Then cert-manager's CRDs are removed (with them
// every Certificate and the ClusterIssuer): the tenants say their certificate is not ready; an
// operator started now says cert-manager is missing, and once the CRDs and issuer are applied
// again everything recovers with no restart.
func TestCertManagerAbsent(t *testing.T) {
	requireCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	first := startOperator(t, "operator-cert-manager")
	ref := referenceShape(ctx, t, "cm-ref")
	live := []string{"cm-ref"}

	if err := cluster.StopCertManager(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !cluster.CertManagerRunning() {
			if err := cluster.StartCertManager(); err != nil {
				t.Error(err)
			}
		}
		// The CRDs and the issuer, should the case have stopped without them.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := applyCertManagerCRDs(ctx); err != nil {
			t.Error(err)
		}
	})
	var fresh []string
	for i := range 5 {
		tenant := newTenant(fmt.Sprintf("cm-%02d", i), v1alpha1.DeletionPolicyRetain)
		withEditor(tenant)
		if err := create(ctx, tenant); err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, tenant.Name)
	}
	// Without certificates the database waits for its TLS Secret: fewer objects, so no shape.
	converge(ctx, t, expectation{live: fresh, ready: certificateSays(v1alpha1.ReasonCertificateNotIssued)}, 2*time.Minute)
	if err := cluster.StartCertManager(); err != nil {
		t.Fatal(err)
	}
	live = append(live, fresh...)
	recovery := converge(ctx, t, expectation{live: live, shape: ref}, 3*time.Minute)
	record("cert-manager's controllers stopped while 5 tenants were created: they said CertificateNotIssued; started again, all Ready in %s",
		recovery.Round(100*time.Millisecond))

	// The CRDs removed and applied again.
	crds := &apiextensionsv1.CustomResourceDefinitionList{}
	if err := cluster.Client.List(ctx, crds); err != nil {
		t.Fatal(err)
	}
	removed := 0
	for i := range crds.Items {
		if crds.Items[i].Spec.Group == "cert-manager.io" {
			if err := cluster.Client.Delete(ctx, &crds.Items[i]); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed == 0 {
		t.Fatal("no cert-manager CRD to remove")
	}
	converge(ctx, t, expectation{live: live, ready: certificateSays("")}, 3*time.Minute)
	// An operator started while cert-manager is absent says so, and picks it up once installed.
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	startOperator(t, "operator-without-cert-manager")
	converge(ctx, t, expectation{live: live, ready: certificateSays(v1alpha1.ReasonCertManagerMissing)}, 3*time.Minute)
	restored := time.Now()
	if err := applyCertManagerCRDs(ctx); err != nil {
		t.Fatal(err)
	}
	recovery = converge(ctx, t, expectation{live: live, shape: ref}, 5*time.Minute)
	record("cert-manager's %d CRDs removed (every Certificate and the ClusterIssuer with them), the operator restarted without them: %d tenants said CertManagerMissing; CRDs and issuer applied again, all Ready %s later without a restart",
		removed, len(live), time.Since(restored).Round(100*time.Millisecond))
	cleanup(ctx, t, live)
}

// applyCertManagerCRDs applies cert-manager's CRDs as hack/dev-cluster.sh does, waits until they
// are served, and applies the ClusterIssuer again (removed with its CRD), as GitOps would.
func applyCertManagerCRDs(ctx context.Context) error {
	dir := filepath.Join(cluster.Root, "config", "crd", "external", "cert-manager")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".yaml") {
			if err := retrying(ctx, "apply "+e.Name(), func() error { return cluster.ApplyFile(ctx, filepath.Join(dir, e.Name()), fieldOwner) }); err != nil {
				return err
			}
		}
	}
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := cluster.Client.Get(ctx, client.ObjectKey{Name: "certificates.cert-manager.io"}, crd); err == nil {
			for _, c := range crd.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					prerequisites := filepath.Join(cluster.Root, "config", "samples", "demo", "prerequisites.yaml")
					return retrying(ctx, "apply the ClusterIssuer", func() error { return cluster.ApplyFile(ctx, prerequisites, fieldOwner) })
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
