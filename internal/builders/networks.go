package builders

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
)

// ClusterRange is one of the cluster's own address ranges (NetworkOptions), which tenant
// firewall rules may contain, with it excepted, but never lie inside.
type ClusterRange struct {
	Prefix netip.Prefix
	// Kind says what the range holds, for messages: pod, Service, node or metadata.
	Kind string
}

func (r ClusterRange) String() string {
	return fmt.Sprintf("the cluster's %s range %s", r.Kind, r.Prefix)
}

// ClusterRanges parses opts.Networks (defaults filled in, DefaultMetadataCIDRs always added) into
// the ranges that NetworkPolicies excepts and validation.Firewall checks against. A range inside
// another is left out, since excepting the wider one covers it; the order is deterministic, so an
// unchanged tenant gives unchanged policies. A CIDR that does not parse is an error: the operator
// should refuse to start with it rather than protect less than it was told.
func ClusterRanges(opts Options) ([]ClusterRange, error) {
	n := opts.withDefaults().Networks
	var all []ClusterRange
	for _, group := range []struct {
		kind  string
		cidrs []string
	}{
		{"metadata", append(slices.Clone(DefaultMetadataCIDRs), n.MetadataCIDRs...)},
		{"pod", n.PodCIDRs},
		{"Service", n.ServiceCIDRs},
		{"node", n.NodeCIDRs},
	} {
		for _, c := range group.cidrs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return nil, fmt.Errorf("%s range %q: %w", group.kind, c, err)
			}
			all = append(all, ClusterRange{Prefix: p.Masked(), Kind: group.kind})
		}
	}
	// Widest first, so that a range is kept only when no kept range contains it; the sort is
	// stable, so among equal prefixes the first kind listed above names it.
	slices.SortStableFunc(all, func(a, b ClusterRange) int {
		if c := cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits()); c != 0 {
			return c
		}
		return a.Prefix.Addr().Compare(b.Prefix.Addr())
	})
	var out []ClusterRange
	for _, r := range all {
		if !slices.ContainsFunc(out, func(kept ClusterRange) bool { return contains(kept.Prefix, r.Prefix) }) {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b ClusterRange) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out, nil
}

// contains says whether prefix outer contains prefix inner (or equals it).
func contains(outer, inner netip.Prefix) bool {
	return outer.Addr().Is4() == inner.Addr().Is4() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// ExceptClusterRanges is what a tenant CIDR becomes in an ipBlock: the cluster ranges it contains,
// for ipBlock.except, so that 0.0.0.0/0 means everything outside the cluster. When the CIDR lies
// inside a cluster range (or equals one), no except can carve that range back out (the API wants
// each except strictly inside its cidr): inside names the range, and the CIDR must not be used.
func ExceptClusterRanges(cidr string, ranges []ClusterRange) (except []string, inside *ClusterRange, err error) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CIDR %q: %w", cidr, err)
	}
	p = p.Masked()
	for _, r := range ranges {
		switch {
		case contains(r.Prefix, p):
			return nil, &r, nil
		case contains(p, r.Prefix):
			except = append(except, r.Prefix.String())
		}
	}
	return except, nil, nil
}
