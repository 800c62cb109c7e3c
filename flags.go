package main

import (
	"flag"
	"fmt"
	"maps"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
)

// bindBuilderFlags binds a flag to every setting of the objects the operator writes, with the
// defaults of a plain installation; the chart passes each from a value.
func bindBuilderFlags(o *builders.Options) {
	d := builders.DefaultOptions()
	*o = d
	flag.StringVar(&o.DefaultIssuer.Name, "default-issuer-name", "", "cert-manager issuer for tenants that name none.")
	flag.StringVar(&o.DefaultIssuer.Kind, "default-issuer-kind", d.DefaultIssuer.Kind, "Kind of the default issuer: Issuer or ClusterIssuer.")
	flag.Func("database-issuer-name", "cert-manager issuer that signs every database's server certificate instead of the tenant's issuer; "+
		"needed when the tenants' issuer is public (ACME), which cannot sign the databases' .svc names.", func(v string) error {
		if o.DatabaseIssuer == nil {
			o.DatabaseIssuer = &v1alpha1.IssuerReference{Kind: "ClusterIssuer"}
		}
		o.DatabaseIssuer.Name = v
		return nil
	})
	flag.Func("database-issuer-kind", "Kind of the database issuer: Issuer or ClusterIssuer (default ClusterIssuer).", func(v string) error {
		if v != "Issuer" && v != "ClusterIssuer" {
			return fmt.Errorf("want Issuer or ClusterIssuer, got %q", v)
		}
		if o.DatabaseIssuer == nil {
			o.DatabaseIssuer = &v1alpha1.IssuerReference{}
		}
		o.DatabaseIssuer.Kind = v
		return nil
	})
	flag.Func("postgres-image", "PostgreSQL image of a major version, as MAJOR=IMAGE (e.g. 17=registry.example.com/postgres:17.6); repeat for each major. "+
		"Defaults: "+joinMap(d.PostgresImages), func(v string) error {
		major, image, ok := strings.Cut(v, "=")
		if _, err := strconv.Atoi(major); !ok || err != nil || image == "" {
			return fmt.Errorf("want MAJOR=IMAGE, got %q", v)
		}
		o.PostgresImages[major] = image
		return nil
	})
	o.PostgresImages = maps.Clone(d.PostgresImages)
	flag.StringVar(&o.ClusterDomain, "cluster-domain", d.ClusterDomain, "The cluster's DNS domain.")
	flag.Func("operator-pod-selector", "Labels (k=v,k2=v2) of the operator's pods that tenant firewalls let reach the databases (default "+joinMap(d.OperatorPodSelector)+").",
		labelsInto(&o.OperatorPodSelector))
	flag.StringVar(&o.DNS.Namespace, "dns-namespace", d.DNS.Namespace, "Namespace of the cluster's DNS pods, which every tenant may reach.")
	flag.Func("dns-pod-selector", "Labels (k=v,k2=v2) of the cluster's DNS pods (default "+joinMap(d.DNS.PodLabels)+").", labelsInto(&o.DNS.PodLabels))
	flag.Func("dns-port", fmt.Sprintf("Port of the cluster's DNS (default %d).", d.DNS.Port), func(v string) error {
		port, err := strconv.ParseInt(v, 10, 32)
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("want a port, got %q", v)
		}
		o.DNS.Port = int32(port)
		return nil
	})
	flag.Func("dns-cidr", "A DNS server outside the pod network every tenant may reach, e.g. a node-local cache's 169.254.20.10/32; repeat for more.", func(v string) error {
		o.DNS.CIDRs = append(o.DNS.CIDRs, v)
		return nil
	})
	flag.StringVar(&o.AgentImage, "agent-image", d.AgentImage, "Image of the backup and verification jobs: tenant-operator with PostgreSQL's client programs.")
	flag.StringVar(&o.IngressClassName, "ingress-class-name", "", "Ingress class of the tenants' Ingresses; the cluster's default class when empty.")
	for _, r := range []struct {
		name, what string
		into       *[]string
	}{
		{"pod-cidrs", "The cluster's pod ranges (default: every private range)", &o.Networks.PodCIDRs},
		{"service-cidrs", "The cluster's Service ranges (default: every private range)", &o.Networks.ServiceCIDRs},
		{"node-cidrs", "The nodes' addresses (default: none beyond the pod ranges)", &o.Networks.NodeCIDRs},
		{"metadata-cidrs", "Link-local and metadata ranges besides 169.254.0.0/16 and fd00:ec2::254/128", &o.Networks.MetadataCIDRs},
	} {
		flag.Func(r.name, r.what+", comma-separated: no tenant firewall rule may open them, and wider rules get them as exceptions.", func(v string) error {
			for _, c := range strings.Split(v, ",") {
				if c = strings.TrimSpace(c); c != "" {
					*r.into = append(*r.into, c)
				}
			}
			return nil
		})
	}
}

func labelsInto(into *map[string]string) func(string) error {
	return func(v string) error {
		set, err := labels.ConvertSelectorToLabelsMap(v)
		if err != nil || len(set) == 0 {
			return fmt.Errorf("want labels such as k=v,k2=v2, got %q", v)
		}
		*into = set
		return nil
	}
}

func joinMap(m map[string]string) string { return labels.Set(m).String() }
