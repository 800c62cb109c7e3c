// Command cert-manager runs cert-manager's own controllers, from the pinned module
// github.com/cert-manager/cert-manager, against the cluster of a kubeconfig: enough of cert-manager
// for the local stack to issue real certificates from self-signed and CA issuers.
//
// cert-manager's usual main (its cmd/controller module) is not served by the Go module proxy, so
// this small main does what it does for the controllers we need: build a controller context, build
// each registered controller, start the shared informers and run the control loops.
//
// hack/dev-cluster.sh builds it into bin/ and starts it; it runs until interrupted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Each of these registers its controller with controllerpkg.Register.
	"github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"

	// The issuer kinds the issuers and clusterissuers controllers set up and mark Ready.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// controllers are the control loops run, by their registered names: the Certificate lifecycle,
// the approver (signers wait for the Approved condition), the self-signed and CA signers, and the
// issuer controllers that mark issuers Ready.
var controllers = []string{
	trigger.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	issuing.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
	approver.ControllerName,
	crselfsigned.CRControllerName,
	crca.CRControllerName,
	issuers.ControllerName,
	clusterissuers.ControllerName,
}

func main() {
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "Kubeconfig of the cluster to run against.")
	clusterResourceNamespace := flag.String("cluster-resource-namespace", "cert-manager", "Namespace of the Secrets that ClusterIssuers (CA) refer to.")
	workers := flag.Int("workers", 2, "Workers per controller.")
	minBackoff := flag.Duration("certificate-request-minimum-backoff", 10*time.Second, "Wait before retrying a failed issuance; cert-manager's default is 1h, too long for a local stack.")
	maxBackoff := flag.Duration("certificate-request-maximum-backoff", 5*time.Minute, "Longest wait between retries of a failed issuance.")
	klog.InitFlags(flag.CommandLine)
	flag.Parse()

	logf.InitLogs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, klog.Background(), "cert-manager")

	err := run(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         *kubeconfig,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: *clusterResourceNamespace},
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: *minBackoff,
			CertificateRequestMaximumBackoffDuration: *maxBackoff,
		},
	}, *workers)
	logf.FlushLogs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opts controllerpkg.ContextOptions, workers int) error {
	if opts.Kubeconfig == "" {
		return errors.New("no kubeconfig: pass --kubeconfig or set KUBECONFIG")
	}
	factory, err := controllerpkg.NewContextFactory(ctx, opts)
	if err != nil {
		return fmt.Errorf("build controller context: %w", err)
	}
	known := controllerpkg.Known()
	loops := map[string]controllerpkg.Interface{}
	for _, name := range controllers {
		constructor, ok := known[name]
		if !ok {
			return fmt.Errorf("controller %q is not registered; registered: %s", name, strings.Join(sortedKeys(known), ", "))
		}
		loop, err := constructor(factory)
		if err != nil {
			return fmt.Errorf("build controller %s: %w", name, err)
		}
		loops[name] = loop
	}

	// Every context the factory builds shares its informer factories: start them once, after
	// every controller has asked for the informers it needs.
	shared, err := factory.Build()
	if err != nil {
		return fmt.Errorf("build controller context: %w", err)
	}
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.KubeSharedInformerFactory.Start(ctx.Done())

	log := logf.FromContext(ctx)
	log.Info("Starting controllers", "controllers", controllers, "kubeconfig", opts.Kubeconfig)
	errs := make(chan error, len(loops))
	var wg sync.WaitGroup
	for name, loop := range loops {
		wg.Go(func() {
			if err := loop.Run(workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", name, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if ctx.Err() != nil && len(all) > 0 {
		// Interrupted while waiting for caches to sync: a normal stop.
		return nil
	}
	return errors.Join(all...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
