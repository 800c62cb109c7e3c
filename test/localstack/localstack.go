// Package localstack runs the local cluster of hack/dev-cluster.sh (kwok's binary runtime: a real
// etcd, kube-apiserver, kube-controller-manager and kube-scheduler, a fake node where pods run,
// cert-manager's controllers, our CRDs and webhook configuration) in a directory of its own, and
// the operator against it as separate processes that tests may stop, kill or pause. The end-to-end
// tests and the fault-injection suite start their stacks with it.
package localstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// OperatorNamespace is where the operator runs and its policy Secrets live in the local stack.
const OperatorNamespace = "tenant-operator-system"

// Cluster is a running local cluster.
type Cluster struct {
	Root       string // the repository
	Dir        string // logs, kubeconfig, kwok's work directory
	Name       string // kwokctl's cluster name
	Kubeconfig string
	Config     *rest.Config
	Client     client.Client
	// WebhookPort is where the webhook configuration sends admission requests: the operators
	// started with StartOperator serve it there, through a forwarder (webhookService).
	WebhookPort int

	env      []string
	stopOnce sync.Once
	webhooks *webhookService
}

// Options are the stack's settings beyond the defaults.
type Options struct {
	// AuditPolicy is an audit policy file: the API server logs what it selects to AuditLog.
	AuditPolicy string
}

// Start builds the operator into dir (as binary "tenant-operator") while it brings the cluster
// up, then applies the demo prerequisites (operator namespace, storage Secrets, the selfsigned
// ClusterIssuer). The caller must call Down, also when Start returns an error with a cluster.
func Start(name string, opts Options) (*Cluster, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return nil, err
	}
	port, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Root: root, Dir: dir, Name: name, WebhookPort: port[0], Kubeconfig: filepath.Join(dir, "kubeconfig")}
	c.env = append(os.Environ(),
		"TENANTOPS_DEV_DIR="+dir,
		"TENANTOPS_CLUSTER="+name,
		fmt.Sprintf("TENANTOPS_WEBHOOK_PORT=%d", port[0]),
	)
	if opts.AuditPolicy != "" {
		c.env = append(c.env, "TENANTOPS_AUDIT_POLICY="+opts.AuditPolicy)
	}
	// The operator builds while the cluster starts.
	build := exec.Command("go", "build", "-o", c.OperatorBinary(), ".")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	var buildOut bytes.Buffer
	build.Stdout, build.Stderr = &buildOut, &buildOut
	if err := build.Start(); err != nil {
		return c, fmt.Errorf("build the operator: %w", err)
	}
	upErr := c.devCluster("up")
	if err := build.Wait(); err != nil {
		return c, fmt.Errorf("build the operator: %w\n%s", err, buildOut.String())
	}
	if upErr != nil {
		return c, fmt.Errorf("hack/dev-cluster.sh up: %w", upErr)
	}
	if c.Config, err = clientcmd.BuildConfigFromFlags("", c.Kubeconfig); err != nil {
		return c, err
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: Scheme()}); err != nil {
		return c, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.ApplyFile(ctx, filepath.Join(root, "config", "samples", "demo", "prerequisites.yaml"), "tenantops-localstack"); err != nil {
		return c, fmt.Errorf("apply the demo prerequisites: %w", err)
	}
	return c, nil
}

// Scheme knows the kinds the tests read and write.
func Scheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, v1alpha1.AddToScheme, cmapi.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	return scheme
}

func (c *Cluster) devCluster(verb string) error {
	cmd := exec.Command("bash", filepath.Join(c.Root, "hack", "dev-cluster.sh"), verb)
	cmd.Dir, cmd.Env = c.Root, c.env
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	return cmd.Run()
}

// OperatorBinary is the operator Start built.
func (c *Cluster) OperatorBinary() string { return filepath.Join(c.Dir, "tenant-operator") }

// Down stops the cluster and cert-manager's controllers, once.
func (c *Cluster) Down() {
	c.stopOnce.Do(func() {
		if err := c.devCluster("down"); err != nil {
			fmt.Fprintf(os.Stderr, "localstack: hack/dev-cluster.sh down: %v\n", err)
		}
	})
}

// DumpLogs prints the last lines of the named logs of the stack's directory (operator logs are
// named by StartOperator).
func (c *Cluster) DumpLogs(w io.Writer, names ...string) {
	if len(names) == 0 {
		names = []string{"operator.log", "cert-manager.log", "kwokctl.log"}
	}
	for _, name := range names {
		data, err := os.ReadFile(filepath.Join(c.Dir, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(w, "==== last lines of %s\n%s\n", filepath.Join(c.Dir, name), strings.Join(lines, "\n"))
	}
}

// ApplyFile applies every object of a YAML file with server-side apply, as kubectl apply
// --server-side does.
func (c *Cluster) ApplyFile(ctx context.Context, path string, owner client.FieldOwner) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &obj.Object); err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := c.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), owner, client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
}

// AuditLog is the API server's audit log (with Options.AuditPolicy).
func (c *Cluster) AuditLog() string {
	return filepath.Join(c.Dir, "kwok", "clusters", c.Name, "logs", "audit.log")
}

// KubeconfigAs writes a kubeconfig that acts as user (in group system:masters) by impersonation,
// so that the audit log tells apart the processes that use it, and returns its path.
func (c *Cluster) KubeconfigAs(user string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
	if err != nil {
		return "", err
	}
	for _, auth := range cfg.AuthInfos {
		auth.Impersonate = user
		auth.ImpersonateGroups = []string{"system:masters"}
	}
	path := filepath.Join(c.Dir, "kubeconfig-"+user)
	return path, clientcmd.WriteToFile(*cfg, path)
}

// kwokctl runs kwokctl on this cluster.
func (c *Cluster) kwokctl(args ...string) error {
	cmd := exec.Command(filepath.Join(c.Root, "bin", "kwokctl-v0.8.0"), append(args, "--name", c.Name)...)
	cmd.Dir = c.Root
	cmd.Env = append(c.env, "KWOK_WORKDIR="+filepath.Join(c.Dir, "kwok"),
		"PATH="+filepath.Join(c.Root, "bin", "control-plane")+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("kwokctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// componentPID is the process of a control plane component (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler) from kwokctl's pid file.
func (c *Cluster) componentPID(component string) (int, error) {
	data, err := os.ReadFile(filepath.Join(c.Dir, "kwok", "clusters", c.Name, "pids", component+".pid"))
	if err != nil {
		return 0, fmt.Errorf("pid of %s: %w", component, err)
	}
	return strconv.Atoi(strings.TrimSpace(string(data)))
}

// KillComponent kills one control plane component with SIGKILL, as a crash would, and waits until
// it is gone.
func (c *Cluster) KillComponent(component string) error {
	pid, err := c.componentPID(component)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s (%d): %w", component, pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); syscall.Kill(pid, 0) == nil; {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (%d) still running 10s after SIGKILL", component, pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// StartComponents starts every control plane component that is not running (kwokctl start
// cluster leaves running ones alone) and waits until the API server serves.
func (c *Cluster) StartComponents() error {
	return c.kwokctl("start", "cluster", "--timeout", "2m", "--wait", "1m")
}

// CertManagerRunning tells whether cert-manager's controllers run.
func (c *Cluster) CertManagerRunning() bool {
	data, err := os.ReadFile(filepath.Join(c.Dir, "cert-manager.pid"))
	if err != nil {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	return err == nil && syscall.Kill(pid, 0) == nil
}

// DeadComponents lists the control plane components (kwokctl's: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kwok-controller) whose process has ended.
func (c *Cluster) DeadComponents() ([]string, error) {
	dir := filepath.Join(c.Dir, "kwok", "clusters", c.Name, "pids")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var dead []string
	for _, e := range entries {
		component, ok := strings.CutSuffix(e.Name(), ".pid")
		if !ok {
			continue
		}
		if pid, err := c.componentPID(component); err != nil || syscall.Kill(pid, 0) != nil {
			dead = append(dead, component)
		}
	}
	return dead, nil
}

// StopCertManager stops cert-manager's controllers.
func (c *Cluster) StopCertManager() error {
	data, err := os.ReadFile(filepath.Join(c.Dir, "cert-manager.pid"))
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop cert-manager (%d): %w", pid, err)
	}
	for deadline := time.Now().Add(20 * time.Second); syscall.Kill(pid, 0) == nil; {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}

// StartCertManager starts cert-manager's controllers again (dev-cluster.sh up starts only what is
// missing of a running cluster: here, them).
func (c *Cluster) StartCertManager() error {
	cmd := exec.Command(filepath.Join(c.Root, "bin", "cert-manager-controller"), "--kubeconfig", c.Kubeconfig)
	log, err := os.OpenFile(filepath.Join(c.Dir, "cert-manager.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start cert-manager: %w", err)
	}
	go func() { _ = cmd.Wait(); _ = log.Close() }()
	return os.WriteFile(filepath.Join(c.Dir, "cert-manager.pid"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
}

// Operator is the operator running as a process of its own.
type Operator struct {
	Name    string
	Log     string
	Metrics string // the metrics endpoint's URL
	cmd     *exec.Cmd
	exited  chan struct{}
	err     error
}

// webhookService is what a Service is to the operator's pods: it listens where the webhook
// configuration sends admission requests and forwards each connection to a running operator's
// webhook server, so that several operators (replicas) serve it on ports of their own.
type webhookService struct {
	mu       sync.Mutex
	backends map[int]bool
	next     int
}

func (c *Cluster) serveWebhooks() error {
	if c.webhooks != nil {
		return nil
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.WebhookPort))
	if err != nil {
		return fmt.Errorf("webhook service: %w", err)
	}
	w := &webhookService{backends: map[int]bool{}}
	c.webhooks = w
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go w.forward(conn)
		}
	}()
	return nil
}

// forward relays a connection to the first backend that accepts it, starting at the next in turn.
func (w *webhookService) forward(conn net.Conn) {
	defer conn.Close()
	w.mu.Lock()
	var ports []int
	for p := range w.backends {
		ports = append(ports, p)
	}
	w.next++
	start := w.next
	w.mu.Unlock()
	for i := range ports {
		port := ports[(start+i)%len(ports)]
		backend, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			continue
		}
		defer backend.Close()
		go func() { _, _ = io.Copy(backend, conn) }()
		_, _ = io.Copy(conn, backend)
		return
	}
}

func (w *webhookService) set(port int, serving bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if serving {
		w.backends[port] = true
	} else {
		delete(w.backends, port)
	}
}

// StartOperator starts the operator with the stack's settings and extra flags, logging to
// NAME.log, and waits until its readiness check passes (wait false: until it runs). Its webhook
// server listens on a port of its own, behind the cluster's webhook service.
func (c *Cluster) StartOperator(name string, wait bool, extra ...string) (*Operator, error) {
	if err := c.serveWebhooks(); err != nil {
		return nil, err
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	o := &Operator{Name: name, Log: filepath.Join(c.Dir, name+".log"), Metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[0]),
		exited: make(chan struct{})}
	logFile, err := os.OpenFile(o.Log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--operator-namespace", OperatorNamespace,
		"--webhook-cert-dir", filepath.Join(c.Dir, "webhook-certs"),
		"--webhook-port", fmt.Sprint(ports[2]),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--default-issuer-name", "selfsigned",
	}, extra...)
	o.cmd = exec.Command(c.OperatorBinary(), args...)
	o.cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	o.cmd.Stdout, o.cmd.Stderr = logFile, logFile
	o.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := o.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the operator: %w", err)
	}
	c.webhooks.set(ports[2], true)
	go func() {
		o.err = o.cmd.Wait()
		c.webhooks.set(ports[2], false)
		_ = logFile.Close()
		close(o.exited)
	}()
	if !wait {
		return o, nil
	}
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[1])
	for deadline := time.Now().Add(60 * time.Second); ; {
		select {
		case <-o.exited:
			return nil, fmt.Errorf("the operator exited: %v", o.err)
		default:
		}
		if resp, err := http.Get(readyz); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return o, nil
			}
		}
		if time.Now().After(deadline) {
			o.Kill()
			return nil, errors.New("the operator was not ready within 60s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pid is the operator's process.
func (o *Operator) Pid() int { return o.cmd.Process.Pid }

// Exited is closed when the process has ended.
func (o *Operator) Exited() <-chan struct{} { return o.exited }

// Err is how the process ended, once Exited is closed.
func (o *Operator) Err() error { return o.err }

// Kill ends the operator with SIGKILL, as a node failure or the OOM killer would, and waits.
func (o *Operator) Kill() {
	_ = o.cmd.Process.Kill()
	<-o.exited
}

// Stop ends the operator with SIGTERM, as the kubelet does, and waits up to 40 s before killing it.
func (o *Operator) Stop() error {
	_ = o.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-o.exited:
		return nil
	case <-time.After(40 * time.Second):
		o.Kill()
		return errors.New("the operator did not stop within 40s of SIGTERM")
	}
}

// Signal sends sig (SIGSTOP and SIGCONT pause and resume it).
func (o *Operator) Signal(sig syscall.Signal) error { return o.cmd.Process.Signal(sig) }

// StopBeforeTheEnd runs stop on an interrupt (then exits) and shortly before go test's -timeout
// (after dumping the logs): either would otherwise end the test binary without deferred code and
// leave the cluster running. who prefixes what it prints.
func (c *Cluster) StopBeforeTheEnd(who string, stop func()) {
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		fmt.Fprintf(os.Stderr, "%s: interrupted; stopping the local stack (logs kept in %s)\n", who, c.Dir)
		stop()
		os.Exit(1)
	}()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > time.Minute {
			time.AfterFunc(d-30*time.Second, func() {
				fmt.Fprintf(os.Stderr, "%s: about to time out; stopping the local stack\n", who)
				c.DumpLogs(os.Stderr)
				stop()
			})
		}
	}
}

// RepoRoot is the directory of hack/dev-cluster.sh above the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "hack", "dev-cluster.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no hack/dev-cluster.sh above the working directory")
		}
		dir = parent
	}
}

// FreePorts returns n ports free on 127.0.0.1 at the time of asking.
func FreePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
