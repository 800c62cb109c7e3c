// Package controlplane starts a real etcd and kube-apiserver (controller-runtime's envtest on the
// binaries hack/control-plane.sh builds) with our CRDs, cert-manager's CRDs and, when asked, our
// validating webhook served by an in-process manager. It fails loudly when the binaries are missing.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
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

	controllerManager *exec.Cmd
	workDir           string
}

// Options chooses what to install.
type Options struct {
	// Webhooks installs our ValidatingWebhookConfiguration pointed at a local server; the caller
	// serves it with NewManager.
	Webhooks bool
	// ControllerManager runs the real kube-controller-manager with the controllers that make the
	// API behave as in a cluster: role aggregation (admin, edit and view get their rules),
	// namespace deletion, garbage collection, StatefulSets (pods, volume claims) and quota usage.
	// No kubelet or scheduler runs, so pods stay Pending.
	ControllerManager bool
	// APIServerFlags are extra kube-apiserver flags, such as an audit policy and log.
	APIServerFlags map[string]string
}

// controllerManagerControllers are the kube-controller-manager controllers tests run.
const controllerManagerControllers = "clusterrole-aggregation-controller,namespace-controller,garbage-collector-controller," +
	"statefulset-controller,resourcequota-controller,persistentvolumeclaim-protection-controller"

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
	// envtest's default service range is a /24: 254 Services, fewer than a thousand tenants' databases.
	env.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	for name, value := range opts.APIServerFlags {
		env.ControlPlane.GetAPIServer().Configure().Set(name, value)
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
	e := &Env{Config: cfg, Environment: env}
	if opts.ControllerManager {
		if err := e.startControllerManager(filepath.Join(assets, "kube-controller-manager")); err != nil {
			_ = e.Stop()
			return nil, err
		}
	}
	return e, nil
}

func (e *Env) startControllerManager(binary string) error {
	if _, err := os.Stat(binary); err != nil {
		return fmt.Errorf("kube-controller-manager not found at %s: run 'make control-plane' first", binary)
	}
	dir, err := os.MkdirTemp("", "kcm-")
	if err != nil {
		return err
	}
	e.workDir = dir
	admin, err := e.Environment.AddUser(envtest.User{Name: "kube-controller-manager", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add controller manager user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return err
	}
	log, err := os.Create(filepath.Join(dir, "kube-controller-manager.log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(binary, "--kubeconfig="+path, "--leader-elect=false", "--secure-port=0",
		"--controllers="+controllerManagerControllers, "--concurrent-namespace-syncs=5", "--v=1")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-controller-manager: %w", err)
	}
	e.controllerManager = cmd
	// Wait until role aggregation has filled in the built-in admin role: tests rely on it.
	c, err := client.New(e.Config, client.Options{})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		role := &rbacv1.ClusterRole{}
		if err := c.Get(context.Background(), client.ObjectKey{Name: "admin"}, role); err == nil && len(role.Rules) > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(log.Name())
			return fmt.Errorf("kube-controller-manager did not aggregate the admin role within 60s; its log:\n%s", tail(string(data), 3000))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Stop stops the control plane.
func (e *Env) Stop() error {
	if e.controllerManager != nil && e.controllerManager.Process != nil {
		_ = e.controllerManager.Process.Kill()
		_ = e.controllerManager.Wait()
	}
	if e.workDir != "" {
		_ = os.RemoveAll(e.workDir)
	}
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
