package bench

import "testing"

func TestTenantOf(t *testing.T) {
	for _, c := range []struct {
		resource, namespace, name, want string
	}{
		{"tenants", "", "tenant-0001", "tenant-0001"},
		{"tenants", "", "", ""}, // a list or watch of every tenant
		{"namespaces", "", "tenant-tenant-0001", "tenant-0001"},
		{"networkpolicies", "tenant-tenant-0001", "default-deny", "tenant-0001"},
		{"secrets", "tenant-tenant-0001", "", "tenant-0001"},
		{"clusterroles", "", "tenancy:tenant-reader:tenant-0001", "tenant-0001"},
		{"clusterrolebindings", "", "tenancy:tenant-reader:tenant-0001", "tenant-0001"},
		{"clusterroles", "", "admin", ""},
		{"events", "default", "tenant-0001.18a2b3c4d5e6f708", "tenant-0001"},
		{"secrets", operatorNamespace, "tenant-tenant-0001-probe", "tenant-0001"},
		{"configmaps", operatorNamespace, "uptime-history-8-3", sharedOwner},
		// The operator's namespace starts like a tenant's, and is none.
		{"secrets", operatorNamespace, "", ""},
		{"leases", operatorNamespace, "tenant-operator.tenancy.tenantops.io", ""},
		{"secrets", "", "", ""},
	} {
		if got := tenantOf(c.resource, c.namespace, c.name); got != c.want {
			t.Errorf("tenantOf(%q, %q, %q) = %q, want %q", c.resource, c.namespace, c.name, got, c.want)
		}
	}
}
