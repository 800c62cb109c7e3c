// Package manager holds the manager's settings (one Options type, every field reachable by a
// flag and a chart value) and what the manager asks the cluster once, at start: which APIs it
// serves.
package manager

import (
	"crypto/x509"
	"fmt"
	"slices"
	"sync"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	gwv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/metrics"
	"github.com/tenantops/tenant-operator/internal/shard"
)

// Options are the manager's settings, every one reachable by a flag of main.go and a value of the
// chart. The builders' settings (namespaces, issuers, images, cluster domain, selectors) are
// embedded: one type for the whole manager.
type Options struct {
	builders.Options
	// MaxConcurrentReconciles is how many Tenants are reconciled at once.
	MaxConcurrentReconciles int
	// BackupCheckInterval is how often each tenant's backup storage is listed (and pruned), besides
	// after every backup job; backupcheck.DefaultInterval when zero.
	BackupCheckInterval time.Duration
	// BackupVolumeRoot is where volume storage claims are mounted into the manager, one directory
	// per claim name, so the operator can check backups on volumes too;
	// backupcheck.DefaultVolumeRoot when empty.
	BackupVolumeRoot string
	// Clock tells the time for freshness, retention and uptime; the real clock when nil. Tests
	// inject one.
	Clock clock.WithTicker
	// DisableUptimeProbes turns off probing tenants' URLs and databases (Available and
	// UptimeObjectiveMet then say NotMonitored).
	DisableUptimeProbes bool
	// DisableDatabaseProbes probes tenants' URLs only: for a manager that runs outside the
	// cluster's network (make run, make demo), where the databases' in-cluster names do not
	// resolve.
	DisableDatabaseProbes bool
	// ProbeRootCAs are the authorities trusted for tenants' URLs; the system's when nil.
	ProbeRootCAs *x509.CertPool
	// Metrics receives the operator's Prometheus series; registered with controller-runtime's
	// registry when nil.
	Metrics *metrics.Metrics
	// GatewayAPI says the API server serves Gateway API's HTTPRoute and ReferenceGrant, found by
	// discovery when the manager starts (GatewayAPIServed): only then are they cached and
	// watched, since a cache or watch of a kind not served stops the manager.
	GatewayAPI bool
	// CertManagerMissing says the API server did not serve cert-manager's Certificate when the
	// manager started (CertManagerServed): the cache then has no entry for it, since one for a
	// kind not served stops the manager, and the tenant controller adds its watches once
	// cert-manager is installed (unfiltered by label until the next restart).
	CertManagerMissing bool
	// Shard is the part of the tenants this manager reconciles (--shards, --shard-index): every
	// per-tenant controller drops the other shards' tenants, and only the first shard runs what is
	// cluster-wide (the policies' status and signing keys). The zero value is every tenant.
	Shard shard.Shard
}

// GatewayAPIServed asks the API server whether it serves the Gateway API kinds the operator writes.
func GatewayAPIServed(cfg *rest.Config) (bool, error) {
	for gv, kind := range map[schema.GroupVersion]string{gwv1.SchemeGroupVersion: "HTTPRoute", gwv1beta1.SchemeGroupVersion: "ReferenceGrant"} {
		if served, err := kindServed(cfg, gv, kind); err != nil || !served {
			return false, err
		}
	}
	return true, nil
}

// CertManagerServed asks the API server whether it serves cert-manager's Certificate kind.
func CertManagerServed(cfg *rest.Config) (bool, error) {
	return kindServed(cfg, cmapi.SchemeGroupVersion, "Certificate")
}

// kindServed asks discovery whether the API server serves kind in gv.
func kindServed(cfg *rest.Config, gv schema.GroupVersion, kind string) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, err
	}
	resources, err := dc.ServerResourcesForGroupVersion(gv.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", gv, err)
	}
	return slices.ContainsFunc(resources.APIResources, func(r metav1.APIResource) bool { return r.Kind == kind }), nil
}

// WithDefaults fills what is empty: the real clock, the metrics registered with
// controller-runtime's registry, and the builders' defaults.
func (o Options) WithDefaults() Options {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Metrics == nil {
		o.Metrics = DefaultMetrics()
	}
	o.Options = o.Options.WithDefaults()
	return o
}

// AddToScheme registers every API the manager reads or writes: Kubernetes', the tenancy API,
// cert-manager's and Gateway API's.
func AddToScheme(s *runtime.Scheme) error {
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cmapi.AddToScheme, gwv1.Install, gwv1beta1.Install} {
		if err := add(s); err != nil {
			return err
		}
	}
	return nil
}

// DefaultMetrics registers the operator's metrics with controller-runtime's registry once per
// process, however many managers a test starts.
var DefaultMetrics = sync.OnceValue(func() *metrics.Metrics { return metrics.New(ctrlmetrics.Registry) })
