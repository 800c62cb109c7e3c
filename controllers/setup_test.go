package controllers_test

import (
	"maps"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/tenantops/tenant-operator/controllers"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// The cache holds only what the operator labelled. cache.Options.ByObject is keyed by pointer, so
// two entries of one kind are both accepted and one of them wins at random; an entry without the
// selector would fill the cache with every such object in the cluster.
func TestCacheHoldsOnlyLabelledObjectsOfEachKind(t *testing.T) {
	opts := controllers.CacheOptions(controllers.Options{Options: builders.Options{OperatorNamespace: "tenant-operator-system"}})
	ours := labels.Set{builders.LabelManagedBy: builders.ManagedByValue}
	theirs := labels.Set{builders.LabelManagedBy: "someone-else", builders.LabelTenant: "acme"}
	entries := map[string]int{}
	for obj, entry := range opts.ByObject {
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			t.Fatal(err)
		}
		entries[gvk.String()]++
		selector := entry.Label
		if selector == nil {
			// Secrets: the operator's namespace whole, elsewhere only what we labelled.
			for ns, config := range entry.Namespaces {
				if ns != "tenant-operator-system" {
					selector = config.LabelSelector
				}
			}
		}
		if selector == nil {
			t.Errorf("%s is cached without a label selector", gvk.Kind)
			continue
		}
		if !selector.Matches(ours) || selector.Matches(theirs) {
			t.Errorf("%s is cached with selector %q, want only objects managed by %s", gvk.Kind, selector, builders.ManagedByValue)
		}
	}
	for kind, n := range entries {
		if n != 1 {
			t.Errorf("%s has %d cache entries; one of them would win at random", kind, n)
		}
	}
	if len(entries) < 10 {
		t.Errorf("only %d kinds configured: %v", len(entries), entries)
	}
}

// TestCachedTLSSecretsHoldNoPrivateKey checks the cache's transform of Secrets: a TLS Secret keeps
// the CA the reconcilers read, and loses the certificate and its private key; other Secrets keep
// their data.
func TestCachedTLSSecretsHoldNoPrivateKey(t *testing.T) {
	opts := controllers.CacheOptions(controllers.Options{Options: builders.Options{OperatorNamespace: "tenant-operator-system"}})
	var transform func(any) (any, error)
	for obj, entry := range opts.ByObject {
		if _, ok := obj.(*corev1.Secret); ok {
			transform = entry.Transform
		}
	}
	if transform == nil {
		t.Fatal("Secrets have no transform in the cache options")
	}
	data := func() map[string][]byte {
		return map[string][]byte{corev1.TLSPrivateKeyKey: []byte("key"), corev1.TLSCertKey: []byte("cert"), builders.DatabaseCAKey: []byte("ca")}
	}
	for _, tc := range []struct {
		secretType corev1.SecretType
		wantKeys   []string
	}{
		{corev1.SecretTypeTLS, []string{builders.DatabaseCAKey}},
		{corev1.SecretTypeOpaque, []string{builders.DatabaseCAKey, corev1.TLSCertKey, corev1.TLSPrivateKeyKey}},
	} {
		kept, err := transform(&corev1.Secret{Type: tc.secretType, Data: data()})
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Sorted(maps.Keys(kept.(*corev1.Secret).Data))
		if !slices.Equal(got, tc.wantKeys) {
			t.Errorf("%s Secret cached with keys %v, want %v", tc.secretType, got, tc.wantKeys)
		}
	}
}
