// Package controlplane starts a real etcd and kube-apiserver (controller-runtime's envtest on the
// binaries hack/control-plane.sh builds) with our CRDs, cert-manager's CRDs and, when asked, our
// validating webhook served by an in-process manager. It fails loudly when the binaries are missing.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// Env is a running control plane.
type Env struct {
	Config      *rest.Config
	Environment *envtest.Environment
}

// Options chooses what to install.
type Options struct {
	// Webhooks installs our ValidatingWebhookConfiguration pointed at a local server; the caller
	// serves it with NewManager.
	Webhooks bool
}

// RepoRoot is the directory of the go.mod of this repository.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "PROJECT")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod with a PROJECT file above the working directory")
		}
		dir = parent
	}
}

// Start starts etcd and kube-apiserver and installs the CRDs.
func Start(opts Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "control-plane")
	}
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, bin)); err != nil {
			return nil, fmt.Errorf("control plane binary %s not found in %s: run 'make control-plane' (hack/control-plane.sh) first", bin, assets)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths: []string{
			filepath.Join(root, "config", "crd", "bases"),
			filepath.Join(root, "config", "crd", "external", "cert-manager"),
		},
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	if opts.Webhooks {
		env.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "config", "webhook")},
		}
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest control plane from %s: %w", assets, err)
	}
	return &Env{Config: cfg, Environment: env}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	return e.Environment.Stop()
}

// ManagerOptions are manager options for tests: no metrics or probe listeners, and the webhook
// server on the port and certificates envtest prepared.
func (e *Env) ManagerOptions() ctrl.Options {
	w := e.Environment.WebhookInstallOptions
	return ctrl.Options{
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir,
		}),
	}
}

// WaitForWebhook blocks until the webhook server answers TLS on its port.
func (e *Env) WaitForWebhook(ctx context.Context, mgr ctrl.Manager) error {
	checker := mgr.GetWebhookServer().StartedChecker()
	for {
		if err := checker(nil); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhook server did not start: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Client returns an uncached client for assertions.
func (e *Env) Client(scheme client.Options) (client.Client, error) {
	return client.New(e.Config, scheme)
}
