// Command tenant-operator runs the operator's manager by default; its subcommands backup, restore,
// verify, backups and export are the backup agent that runs inside the backup CronJobs' pods, and
// evidence reports on a tenant's promises. Named kubectl-tenant (a link on PATH), it is the kubectl
// plugin: kubectl tenant evidence T, kubectl tenant status.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"syscall"
	"time"
	_ "time/tzdata" // business hours need time zones; distroless images have no zoneinfo

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/tenantops/tenant-operator/controllers"
	"github.com/tenantops/tenant-operator/internal/backup"
	"github.com/tenantops/tenant-operator/internal/backupcheck"
	"github.com/tenantops/tenant-operator/internal/evidence"
	"github.com/tenantops/tenant-operator/internal/leadership"
	"github.com/tenantops/tenant-operator/internal/manager"
	"github.com/tenantops/tenant-operator/internal/shard"
	tenantwebhook "github.com/tenantops/tenant-operator/internal/webhook"
)

func main() {
	if filepath.Base(os.Args[0]) == evidence.PluginName {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := evidence.RunPlugin(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) > 1 {
		switch {
		case slices.Contains(evidence.Commands, os.Args[1]):
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := evidence.RunCommand(ctx, os.Args[1:], os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		case slices.Contains(backup.Commands, os.Args[1]):
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			code := backup.RunCommand(ctx, os.Args[1:], os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		case os.Args[1] == "manager":
			os.Args = append(os.Args[:1], os.Args[2:]...)
		}
	}
	if err := runManager(); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

// newScheme registers every API the manager reads or writes.
func newScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(controllers.AddToScheme(scheme))
	return scheme
}

func runManager() error {
	var (
		metricsAddr, probeAddr, webhookCertDir, operatorNamespace string
		probeCAFile, pprofAddr                                    string
		uptimeProbes, apiCompression                              bool
		webhookPort                                               int
		apiQPS                                                    float64
		apiBurst, shards, shardIndex                              int
		leaderElect, enableWebhooks, secureMetrics                bool
		leaseDuration                                             time.Duration
		opts                                                      controllers.Options
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.BoolVar(&secureMetrics, "metrics-secure", false, "Serve metrics over HTTPS with authentication and authorization by the API server.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles at a time.")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 30*time.Second, "How long a leader's lease lasts: a replica takes over this long after the leader stopped renewing it, and a leader that could not renew it for nine tenths of it refuses to write.")
	flag.BoolVar(&enableWebhooks, "enable-webhooks", true, "Serve the validating admission webhook.")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "Port the admission webhook listens on.")
	flag.StringVar(&webhookCertDir, "webhook-cert-dir", "", "Directory with tls.crt and tls.key for the webhook; the default is controller-runtime's.")
	flag.StringVar(&operatorNamespace, "operator-namespace", envOr("POD_NAMESPACE", "tenant-operator-system"), "Namespace the operator runs in, where backup jobs run and policy Secrets live.")
	bindBuilderFlags(&opts.Options)
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", 4, "How many Tenants are reconciled at once.")
	flag.DurationVar(&opts.BackupCheckInterval, "backup-check-interval", backupcheck.DefaultInterval, "How often each tenant's backup storage is listed and pruned, besides after every backup job.")
	flag.StringVar(&opts.BackupVolumeRoot, "backup-volume-root", backupcheck.DefaultVolumeRoot, "Where volume backup storage claims are mounted into the manager, one directory per claim, so their backups can be checked.")
	flag.BoolVar(&uptimeProbes, "uptime-probes", true, "Probe every tenant's URL and database for Available, UptimeObjectiveMet and the uptime metrics.")
	flag.BoolVar(&opts.DisableDatabaseProbes, "no-database-probes", false, "Probe tenants' URLs only, not their databases: for a manager that runs outside the cluster's network, where the databases' in-cluster names do not resolve.")
	flag.StringVar(&probeCAFile, "probe-ca-file", "", "PEM file of extra certificate authorities trusted for tenants' URLs, besides the system's.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "", "Address to serve Go's pprof profiles on, for investigating the manager's CPU and memory; empty disables it.")
	// 50 QPS held a burst of new tenants to about 2 a second (a tenant's first pass makes some 30
	// requests); the API server's priority and fairness, not the client, is what protects it.
	flag.Float64Var(&apiQPS, "kube-api-qps", 200, "Queries per second to the API server the client allows itself.")
	flag.IntVar(&apiBurst, "kube-api-burst", 400, "Burst of queries to the API server the client allows itself.")
	flag.IntVar(&shards, "shards", 1, "How many managers share the tenants, each reconciling those whose name hashes to its --shard-index, with a leader election of its own; 1 is one manager for all (docs/performance.md, Sharding).")
	flag.IntVar(&shardIndex, "shard-index", 0, "Which of the --shards this manager is, from 0; shard 0 also runs what is not per tenant (the policies' status).")
	flag.BoolVar(&apiCompression, "kube-api-compression", false, "Ask the API server to gzip its responses and watch streams. Off by default: the manager runs beside the API server on the cluster network, where compressing every watch event costs both sides more CPU than the bytes it saves.")
	zapOpts := zap.Options{Development: false, TimeEncoder: zapcore.ISO8601TimeEncoder}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	opts.OperatorNamespace = operatorNamespace
	part, err := shard.New(shardIndex, shards)
	if err != nil {
		return fmt.Errorf("--shards %d --shard-index %d: %w", shards, shardIndex, err)
	}
	opts.Shard = part

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	switch limit, ok, err := manager.SoftMemoryLimit(os.Getenv); {
	case err != nil:
		return err
	case ok:
		debug.SetMemoryLimit(limit)
		log.Info("Go memory limit set to 90 % of the container's", "bytes", limit)
	}

	// HTTP/2 is off for the webhook and metrics servers (CVE-2023-44487, rapid reset).
	disableHTTP2 := func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }
	metricsOpts := metricsserver.Options{BindAddress: metricsAddr, SecureServing: secureMetrics, TLSOpts: []func(*tls.Config){disableHTTP2}}
	if secureMetrics {
		metricsOpts.FilterProvider = filtersForSecureMetrics
	}
	if leaseDuration < 6*time.Second {
		return fmt.Errorf("--leader-elect-lease-duration %s: at least 6s", leaseDuration)
	}
	// client-go's proportions of its 15s default lease: renew within two thirds of it, try
	// every fifteenth.
	renewDeadline, retryPeriod := leaseDuration*2/3, leaseDuration/15
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	restConfig.QPS, restConfig.Burst = float32(apiQPS), apiBurst
	restConfig.DisableCompression = !apiCompression
	opts.DisableUptimeProbes = !uptimeProbes
	if probeCAFile != "" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(probeCAFile)
		if err != nil {
			return fmt.Errorf("read --probe-ca-file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--probe-ca-file %s holds no PEM certificate", probeCAFile)
		}
		opts.ProbeRootCAs = roots
	}
	if opts.GatewayAPI, err = controllers.GatewayAPIServed(restConfig); err != nil {
		return fmt.Errorf("discover Gateway API: %w", err)
	}
	certManager, err := controllers.CertManagerServed(restConfig)
	if err != nil {
		return fmt.Errorf("discover cert-manager: %w", err)
	}
	opts.CertManagerMissing = !certManager
	leaseName := opts.Shard.LeaseName("tenant-operator.tenancy.tenantops.io")
	var fence *leadership.Fence
	var leaseLock resourcelock.Interface
	if leaderElect {
		// Fenced: a leader that was paused past its lease refuses to write when it wakes, rather
		// than racing the replica that took over (internal/leadership).
		if fence, leaseLock, err = leadership.NewLease(restConfig, operatorNamespace, leaseName, leaseDuration); err != nil {
			return err
		}
		log.Info("Leader election", "lease", operatorNamespace+"/"+leaseName, "identity", leaseLock.Identity(), "leaseDuration", leaseDuration)
	}
	mgrOptions := ctrl.Options{
		Cache:                               controllers.CacheOptions(opts),
		Scheme:                              newScheme(),
		Metrics:                             metricsOpts,
		HealthProbeBindAddress:              probeAddr,
		PprofBindAddress:                    pprofAddr,
		LeaderElection:                      leaderElect,
		LeaderElectionID:                    leaseName,
		LeaderElectionNamespace:             operatorNamespace,
		LeaderElectionResourceLockInterface: leaseLock,
		LeaderElectionReleaseOnCancel:       true,
		LeaseDuration:                       &leaseDuration,
		RenewDeadline:                       &renewDeadline,
		RetryPeriod:                         &retryPeriod,
		GracefulShutdownTimeout:             ptr.To(30 * time.Second),
		WebhookServer: webhook.NewServer(webhook.Options{
			Port: webhookPort, CertDir: webhookCertDir, TLSOpts: []func(*tls.Config){disableHTTP2},
		}),
	}
	if fence != nil {
		mgrOptions.NewClient = fence.NewClient
	}
	mgr, err := ctrl.NewManager(restConfig, mgrOptions)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.SetupWithManager(mgr, opts); err != nil {
		return fmt.Errorf("set up controllers: %w", err)
	}
	if enableWebhooks {
		if err := tenantwebhook.SetupWithManager(mgr, tenantwebhook.WithBuilderOptions(opts.Options)); err != nil {
			return fmt.Errorf("set up webhooks: %w", err)
		}
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return fmt.Errorf("add webhook readiness check: %w", err)
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("add health check: %w", err)
	}
	if err := controllers.WarmCaches(context.Background(), mgr, opts); err != nil {
		return fmt.Errorf("warm caches: %w", err)
	}
	if err := mgr.AddReadyzCheck("caches", controllers.CachesSynced(mgr)); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	log.Info("Starting manager", "operatorNamespace", operatorNamespace, "webhooks", enableWebhooks, "leaderElection", leaderElect,
		"shard", opts.Shard.Index, "shards", max(1, opts.Shard.Count))
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		return fmt.Errorf("run manager: %w", err)
	}
	return nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
