package validation

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// TestFirewall: CIDRs inside the cluster's own ranges are refused with the field and the range
// named; CIDRs that contain them, 0.0.0.0/0 above all, pass, since the builder excepts the ranges.
func TestFirewall(t *testing.T) {
	tenant := func(allowed []string, egress ...[]string) *v1alpha1.Tenant {
		t := &v1alpha1.Tenant{
			ObjectMeta: metav1.ObjectMeta{Name: "t"},
			Spec: v1alpha1.TenantSpec{
				Hostnames: []string{"t.example.com"},
				Database:  v1alpha1.DatabaseSpec{Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}},
				Firewall:  v1alpha1.FirewallSpec{AllowedCIDRs: allowed},
			},
		}
		for _, to := range egress {
			t.Spec.Firewall.Egress = append(t.Spec.Firewall.Egress, v1alpha1.EgressRule{ToCIDRs: to})
		}
		return t
	}
	exact := builders.DefaultOptions()
	exact.Networks = builders.NetworkOptions{PodCIDRs: []string{"10.244.0.0/16"}, ServiceCIDRs: []string{"10.96.0.0/12"}}
	tests := []struct {
		name   string
		opts   builders.Options
		tenant *v1alpha1.Tenant
		want   []string // one part of each error, in order; none when valid
	}{
		{"the world, both directions", exact, tenant([]string{"0.0.0.0/0", "::/0"}, []string{"0.0.0.0/0", "::/0"}), nil},
		{"public ranges", exact, tenant([]string{"203.0.113.0/24"}, []string{"198.51.100.10/32"}), nil},
		{"a private network outside the cluster's exact ranges", exact, tenant(nil, []string{"10.10.0.0/16"}), nil},
		{"another tenant's pods", exact, tenant(nil, []string{"198.51.100.0/24", "10.244.7.0/24"}),
			[]string{"spec.firewall.egress[0].toCIDRs[1]", `"10.244.7.0/24"`, "the cluster's pod range 10.244.0.0/16"}},
		{"a Service IP, in the second rule", exact, tenant(nil, []string{"198.51.100.0/24"}, []string{"10.96.0.1/32"}),
			[]string{"spec.firewall.egress[1].toCIDRs[0]", "the cluster's Service range 10.96.0.0/12"}},
		{"the metadata service", exact, tenant(nil, []string{"169.254.169.254/32"}),
			[]string{"spec.firewall.egress[0].toCIDRs[0]", "the cluster's metadata range 169.254.0.0/16"}},
		{"the pod range itself as a source", exact, tenant([]string{"10.244.0.0/16"}),
			[]string{"spec.firewall.allowedCIDRs[0]", "the cluster's pod range 10.244.0.0/16"}},
		{"with the default options, any private network", builders.DefaultOptions(), tenant([]string{"192.168.1.0/24"}),
			[]string{"spec.firewall.allowedCIDRs[0]", "the cluster's pod range 192.168.0.0/16"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ranges, err := builders.ClusterRanges(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			errs := Firewall(tt.tenant, ranges)
			if len(tt.want) == 0 {
				if len(errs) != 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("want one error, got %v", errs)
			}
			for _, part := range tt.want {
				if !strings.Contains(errs[0].Error(), part) {
					t.Errorf("error %q does not say %q", errs[0].Error(), part)
				}
			}
		})
	}
}
