package builders

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestClusterRanges(t *testing.T) {
	custom := func(pods, services, nodes, metadata []string) Options {
		opts := DefaultOptions()
		opts.Networks = NetworkOptions{PodCIDRs: pods, ServiceCIDRs: services, NodeCIDRs: nodes, MetadataCIDRs: metadata}
		return opts
	}
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		// fd00:ec2::254/128 lies in fc00::/7, which excepts it already.
		{"defaults: every private range and the metadata service", DefaultOptions(),
			[]string{"pod 10.0.0.0/8", "pod 100.64.0.0/10", "metadata 169.254.0.0/16", "pod 172.16.0.0/12", "pod 192.168.0.0/16", "pod fc00::/7"}},
		{"an empty Options means the defaults", Options{},
			[]string{"pod 10.0.0.0/8", "pod 100.64.0.0/10", "metadata 169.254.0.0/16", "pod 172.16.0.0/12", "pod 192.168.0.0/16", "pod fc00::/7"}},
		{"the cluster's exact ranges", custom([]string{"10.244.0.0/16"}, []string{"10.96.0.0/12"}, []string{"192.168.10.0/24"}, nil),
			[]string{"Service 10.96.0.0/12", "pod 10.244.0.0/16", "metadata 169.254.0.0/16", "node 192.168.10.0/24", "metadata fd00:ec2::254/128"}},
		{"a range inside another is left out", custom([]string{"10.0.0.0/8"}, []string{"10.96.0.0/12"}, nil, nil),
			[]string{"pod 10.0.0.0/8", "metadata 169.254.0.0/16", "metadata fd00:ec2::254/128"}},
		{"metadata options add to the defaults, never replace them", custom([]string{"10.244.0.0/16"}, []string{"10.96.0.0/12"}, nil, []string{"100.100.100.200/32"}),
			[]string{"Service 10.96.0.0/12", "pod 10.244.0.0/16", "metadata 100.100.100.200/32", "metadata 169.254.0.0/16", "metadata fd00:ec2::254/128"}},
		{"host bits are masked", custom([]string{"10.244.1.7/16"}, []string{"10.96.0.0/12"}, nil, nil),
			[]string{"Service 10.96.0.0/12", "pod 10.244.0.0/16", "metadata 169.254.0.0/16", "metadata fd00:ec2::254/128"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ranges, err := ClusterRanges(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range ranges {
				got = append(got, fmt.Sprintf("%s %s", r.Kind, r.Prefix))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ranges = %v\nwant     %v", got, tt.want)
			}
		})
	}

	opts := DefaultOptions()
	opts.Networks.ServiceCIDRs = []string{"10.96.0.0/33"}
	if _, err := ClusterRanges(opts); err == nil || !strings.Contains(err.Error(), `Service range "10.96.0.0/33"`) {
		t.Errorf("an unparsable range gave %v, want an error naming it", err)
	}
}

func TestExceptClusterRanges(t *testing.T) {
	opts := DefaultOptions()
	opts.Networks = NetworkOptions{PodCIDRs: []string{"10.244.0.0/16"}, ServiceCIDRs: []string{"10.96.0.0/12"}, NodeCIDRs: []string{"192.168.10.0/24"}}
	ranges, err := ClusterRanges(opts)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cidr       string
		wantExcept []string
		wantInside string // the range it lies in, "" when none
	}{
		{"0.0.0.0/0", []string{"10.96.0.0/12", "10.244.0.0/16", "169.254.0.0/16", "192.168.10.0/24"}, ""},
		{"::/0", []string{"fd00:ec2::254/128"}, ""},
		{"128.0.0.0/1", []string{"169.254.0.0/16", "192.168.10.0/24"}, ""},
		{"10.0.0.0/8", []string{"10.96.0.0/12", "10.244.0.0/16"}, ""},
		// Host bits set: the range is what counts, as the API server reads it.
		{"10.1.2.3/8", []string{"10.96.0.0/12", "10.244.0.0/16"}, ""},
		{"203.0.113.0/24", nil, ""},
		{"10.10.0.0/16", nil, ""},
		{"10.244.0.0/16", nil, "the cluster's pod range 10.244.0.0/16"},
		{"10.244.3.0/24", nil, "the cluster's pod range 10.244.0.0/16"},
		{"10.96.0.1/32", nil, "the cluster's Service range 10.96.0.0/12"},
		{"169.254.169.254/32", nil, "the cluster's metadata range 169.254.0.0/16"},
		{"192.168.10.5/32", nil, "the cluster's node range 192.168.10.0/24"},
		{"fd00:ec2::254/128", nil, "the cluster's metadata range fd00:ec2::254/128"},
	}
	for _, tt := range tests {
		t.Run(tt.cidr, func(t *testing.T) {
			except, inside, err := ExceptClusterRanges(tt.cidr, ranges)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(except, tt.wantExcept) {
				t.Errorf("except = %v, want %v", except, tt.wantExcept)
			}
			got := ""
			if inside != nil {
				got = inside.String()
			}
			if got != tt.wantInside {
				t.Errorf("inside = %q, want %q", got, tt.wantInside)
			}
		})
	}
	if _, _, err := ExceptClusterRanges("example.com", ranges); err == nil {
		t.Error("a CIDR that does not parse gave no error")
	}
}
