package cachemeta

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// cachedService is an owned object as the operator's cache receives it: labels tying it to its
// tenant, the applier's annotation, an owner reference to the Tenant, and two writers.
func cachedService(tenant int) []byte {
	name := fmt.Sprintf("tenant-%05d", tenant)
	uid := fmt.Sprintf("6b0c3f7e-1d2a-4c55-9e1f-%012d", tenant)
	now := metav1.NewTime(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	svc := corev1.Service{ObjectMeta: metav1.ObjectMeta{
		Name: "postgres", Namespace: "tenant-" + name, UID: types.UID(fmt.Sprintf("0c1d2e3f-%027d", tenant)), ResourceVersion: fmt.Sprint(1000 + tenant),
		CreationTimestamp: now,
		Labels:            map[string]string{"app.kubernetes.io/managed-by": "tenant-operator", "tenancy.tenantops.io/tenant": name},
		Annotations:       map[string]string{"tenancy.tenantops.io/applied": fmt.Sprintf("%032x", tenant)},
		OwnerReferences:   []metav1.OwnerReference{{APIVersion: "tenancy.tenantops.io/v1alpha1", Kind: "Tenant", Name: name, UID: types.UID(uid)}},
		ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: "tenant-operator", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{}}`)}},
			{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1", Time: &now, FieldsType: "FieldsV1", Subresource: "status"},
		},
	}}
	data, err := json.Marshal(svc)
	if err != nil {
		panic(err)
	}
	return data
}

func TestCompactKeepsWhatIsRead(t *testing.T) {
	var svc corev1.Service
	if err := json.Unmarshal(cachedService(7), &svc); err != nil {
		t.Fatal(err)
	}
	want := svc.DeepCopy()
	Compact(&svc)

	if svc.Namespace != want.Namespace || svc.Name != want.Name || svc.UID != want.UID || svc.ResourceVersion != want.ResourceVersion {
		t.Errorf("identity changed: got %s/%s %s %s", svc.Namespace, svc.Name, svc.UID, svc.ResourceVersion)
	}
	for _, m := range []struct {
		name      string
		got, want map[string]string
	}{{"labels", svc.Labels, want.Labels}, {"annotations", svc.Annotations, want.Annotations}} {
		if fmt.Sprint(m.got) != fmt.Sprint(m.want) {
			t.Errorf("%s: got %v, want %v", m.name, m.got, m.want)
		}
	}
	if fmt.Sprint(svc.OwnerReferences) != fmt.Sprint(want.OwnerReferences) {
		t.Errorf("owner references: got %v, want %v", svc.OwnerReferences, want.OwnerReferences)
	}
	if len(svc.ManagedFields) != 2 {
		t.Fatalf("managed fields: got %d entries, want 2", len(svc.ManagedFields))
	}
	for i, f := range svc.ManagedFields {
		w := want.ManagedFields[i]
		if f.Manager != w.Manager || f.Operation != w.Operation || f.Subresource != w.Subresource || f.APIVersion != w.APIVersion {
			t.Errorf("managed fields[%d]: got writer %s %s %q, want %s %s %q", i, f.Manager, f.Operation, f.Subresource, w.Manager, w.Operation, w.Subresource)
		}
		if f.FieldsV1 != nil || f.Time != nil || f.FieldsType != "" {
			t.Errorf("managed fields[%d] kept what nothing reads: %+v", i, f)
		}
	}
}

// TestCompactSharesStrings checks that two objects of one tenant, decoded apart, end up holding
// one copy of their common strings.
func TestCompactSharesStrings(t *testing.T) {
	var a, b corev1.Service
	for _, s := range []*corev1.Service{&a, &b} {
		if err := json.Unmarshal(cachedService(3), s); err != nil {
			t.Fatal(err)
		}
	}
	if unsafeData(a.Namespace) == unsafeData(b.Namespace) {
		t.Fatal("the decoder already shares strings; this test proves nothing")
	}
	Compact(&a)
	Compact(&b)
	runtime.KeepAlive(&a)
	for name, pair := range map[string][2]string{
		"namespace":          {a.Namespace, b.Namespace},
		"tenant label":       {a.Labels["tenancy.tenantops.io/tenant"], b.Labels["tenancy.tenantops.io/tenant"]},
		"owner UID":          {string(a.OwnerReferences[0].UID), string(b.OwnerReferences[0].UID)},
		"field manager":      {a.ManagedFields[0].Manager, b.ManagedFields[0].Manager},
		"owner's APIVersion": {a.OwnerReferences[0].APIVersion, b.OwnerReferences[0].APIVersion},
	} {
		if unsafeData(pair[0]) != unsafeData(pair[1]) {
			t.Errorf("%s: two copies of %q", name, pair[0])
		}
	}
}

// BenchmarkCachedMetadata reports the heap a cached object takes as decoded and as compacted, for
// 20 objects of each of 1,000 tenants listed kind by kind, as informers fill, with a collection
// every 500 objects: an object shares only with those decoded since the last collection that
// left no other object holding the string, so this is what sharing is worth in a busy manager.
func BenchmarkCachedMetadata(b *testing.B) {
	for _, compact := range []bool{false, true} {
		b.Run(fmt.Sprintf("compact=%v", compact), func(b *testing.B) {
			const tenants, perTenant = 1000, 20
			for range b.N {
				objects := make([]*corev1.Service, 0, tenants*perTenant)
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range perTenant {
					for tenant := range tenants {
						svc := &corev1.Service{}
						if err := json.Unmarshal(cachedService(tenant), svc); err != nil {
							b.Fatal(err)
						}
						if compact {
							Compact(svc)
						}
						objects = append(objects, svc)
						if len(objects)%500 == 0 {
							runtime.GC()
						}
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(objects)), "B/object")
				runtime.KeepAlive(objects)
			}
		})
	}
}
