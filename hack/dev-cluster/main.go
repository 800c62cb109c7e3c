// Command dev-cluster runs a local control plane (etcd and kube-apiserver from bin/control-plane)
// for development and the demo: it installs cert-manager's CRDs and ours, points our validating
// webhook at a manager run on this machine, writes a kubeconfig, and runs until interrupted.
//
// hack/dev-cluster.sh starts it in the background; use make dev-cluster and make dev-cluster-down.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

func main() {
	dir := flag.String("dir", "bin/dev", "Directory for the kubeconfig, webhook certificates and data.")
	webhookPort := flag.Int("webhook-port", 9443, "Port the locally run manager serves the webhook on.")
	flag.Parse()
	if err := run(*dir, *webhookPort); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(dir string, webhookPort int) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	root := filepath.Dir(filepath.Dir(dir)) // bin/dev -> repository root
	assets := filepath.Join(root, "bin", "control-plane")
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return fmt.Errorf("kube-apiserver not found in %s: run make control-plane first", assets)
	}
	certDir := filepath.Join(dir, "webhook-certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths: []string{
			filepath.Join(root, "config", "crd", "bases"),
			filepath.Join(root, "config", "crd", "external", "cert-manager"),
		},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths:            []string{filepath.Join(root, "config", "webhook")},
			LocalServingHost: "127.0.0.1",
			LocalServingPort: webhookPort,
		},
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	if _, err := env.Start(); err != nil {
		return fmt.Errorf("start control plane: %w", err)
	}
	defer func() { _ = env.Stop() }()
	// envtest writes the webhook's serving certificate to a directory of its own choosing; the
	// manager run by make run reads it from ours.
	for _, name := range []string{"tls.crt", "tls.key"} {
		data, err := os.ReadFile(filepath.Join(env.WebhookInstallOptions.LocalServingCertDir, name))
		if err != nil {
			return fmt.Errorf("read webhook certificate: %w", err)
		}
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			return fmt.Errorf("write webhook certificate: %w", err)
		}
	}

	admin, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return fmt.Errorf("render kubeconfig: %w", err)
	}
	path := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(path+".tmp", kubeconfig, 0o600); err != nil {
		return err
	}
	// Renamed last: its existence tells hack/dev-cluster.sh the control plane is ready.
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	fmt.Printf("Control plane ready; KUBECONFIG=%s; webhook expected on https://127.0.0.1:%d\n", path, webhookPort)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
	_ = os.Remove(path)
	return nil
}
