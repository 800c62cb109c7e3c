package e2e

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// enableEnv turns the end-to-end tests on.
const enableEnv = "TENANTOPS_E2E"

// stack is the running local stack, set by TestMain when the tests are enabled.
var stack *Stack

// Stack is the local cluster of hack/dev-cluster.sh in a directory of its own, and the operator
// running against it as a separate process.
type Stack struct {
	Root   string
	Dir    string
	Client client.Client

	env      []string
	operator *exec.Cmd
	exited   chan error // receives the operator's exit
	stopOnce sync.Once
}

func TestMain(m *testing.M) {
	flag.Parse() // for -test.timeout
	if os.Getenv(enableEnv) != "1" {
		os.Exit(m.Run()) // every test skips
	}
	// The test's own client logs only what goes wrong; without a logger controller-runtime
	// prints a warning with a stack trace that looks like a failure.
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	s, err := startStack()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cannot start the local stack: %v\n", err)
		if s != nil {
			s.dumpLogs()
			s.stop()
		}
		os.Exit(1)
	}
	stack = s
	// go test's -timeout panics without running deferred code, and an interrupt kills the test
	// binary: either would leave the cluster running. Stop it shortly before the timeout, and on
	// an interrupt.
	interrupted := make(chan os.Signal, 1)
	signal.Notify(interrupted, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupted
		fmt.Fprintf(os.Stderr, "e2e: interrupted; stopping the local stack (logs kept in %s)\n", s.Dir)
		s.stop()
		os.Exit(1)
	}()
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > time.Minute {
			time.AfterFunc(d-30*time.Second, func() {
				fmt.Fprintln(os.Stderr, "e2e: about to time out; stopping the local stack")
				s.dumpLogs()
				s.stop()
			})
		}
	}
	code := m.Run()
	if code != 0 {
		s.dumpLogs()
	}
	s.stop()
	if code == 0 {
		_ = os.RemoveAll(s.Dir)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", s.Dir)
	}
	os.Exit(code)
}

// requireStack skips the test unless the end-to-end tests are enabled.
func requireStack(t *testing.T) *Stack {
	t.Helper()
	if stack == nil {
		t.Skipf("end-to-end test: set %s=1 (make e2e) to run it on the local stack", enableEnv)
	}
	return stack
}

func startStack() (*Stack, error) {
	began := time.Now()
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tenantops-e2e-")
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	s := &Stack{Root: root, Dir: dir}
	s.env = append(os.Environ(),
		"TENANTOPS_DEV_DIR="+dir,
		"TENANTOPS_CLUSTER=tenantops-e2e",
		fmt.Sprintf("TENANTOPS_WEBHOOK_PORT=%d", ports[0]),
	)

	// The operator builds while the cluster starts.
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "tenant-operator"), ".")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	var buildOut bytes.Buffer
	build.Stdout, build.Stderr = &buildOut, &buildOut
	if err := build.Start(); err != nil {
		return s, fmt.Errorf("build the operator: %w", err)
	}
	up := exec.Command("bash", filepath.Join(root, "hack", "dev-cluster.sh"), "up")
	up.Dir, up.Env = root, s.env
	up.Stdout, up.Stderr = os.Stderr, os.Stderr
	upErr := up.Run()
	if err := build.Wait(); err != nil {
		return s, fmt.Errorf("build the operator: %w\n%s", err, buildOut.String())
	}
	if upErr != nil {
		return s, fmt.Errorf("hack/dev-cluster.sh up: %w", upErr)
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster up in %s\n", time.Since(began).Round(time.Second))

	kubeconfig := filepath.Join(dir, "kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return s, err
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme, cmapi.AddToScheme} {
		if err := add(scheme); err != nil {
			return s, err
		}
	}
	if s.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.ApplyFile(ctx, filepath.Join(root, "config", "samples", "demo", "prerequisites.yaml")); err != nil {
		return s, fmt.Errorf("apply the demo prerequisites: %w", err)
	}

	logFile, err := os.Create(filepath.Join(dir, "operator.log"))
	if err != nil {
		return s, err
	}
	s.operator = exec.Command(filepath.Join(dir, "tenant-operator"),
		"--operator-namespace", "tenant-operator-system",
		"--webhook-cert-dir", filepath.Join(dir, "webhook-certs"),
		"--webhook-port", fmt.Sprint(ports[0]),
		"--metrics-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--default-issuer-name", "selfsigned",
	)
	s.operator.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	s.operator.Stdout, s.operator.Stderr = logFile, logFile
	s.operator.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.operator.Start(); err != nil {
		return s, fmt.Errorf("start the operator: %w", err)
	}
	s.exited = make(chan error, 1)
	go func() { s.exited <- s.operator.Wait(); _ = logFile.Close() }()
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[2])
	for deadline := time.Now().Add(30 * time.Second); ; {
		select {
		case err := <-s.exited:
			s.operator = nil
			return s, fmt.Errorf("the operator exited: %v", err)
		default:
		}
		if resp, err := http.Get(readyz); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			return s, errors.New("the operator was not ready within 30s")
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "e2e: stack with the operator ready in %s (logs in %s)\n", time.Since(began).Round(time.Second), dir)
	return s, nil
}

// stop stops the operator, then the cluster and cert-manager's controllers, once.
func (s *Stack) stop() { s.stopOnce.Do(s.stopNow) }

func (s *Stack) stopNow() {
	if s.operator != nil && s.operator.Process != nil {
		_ = s.operator.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(40 * time.Second):
			_ = s.operator.Process.Kill()
			<-s.exited
		}
	}
	down := exec.Command("bash", filepath.Join(s.Root, "hack", "dev-cluster.sh"), "down")
	down.Dir, down.Env = s.Root, s.env
	if out, err := down.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: hack/dev-cluster.sh down: %v\n%s", err, out)
	}
}

// dumpLogs prints the end of the operator's and cert-manager's logs.
func (s *Stack) dumpLogs() {
	for _, name := range []string{"operator.log", "cert-manager.log", "kwokctl.log"} {
		data, err := os.ReadFile(filepath.Join(s.Dir, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		fmt.Fprintf(os.Stderr, "==== last lines of %s\n%s\n", filepath.Join(s.Dir, name), strings.Join(lines, "\n"))
	}
}

func repoRoot() (string, error) {
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

// freePorts returns n ports free on 127.0.0.1 at the time of asking.
func freePorts(n int) ([]int, error) {
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
