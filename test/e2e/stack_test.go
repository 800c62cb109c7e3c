package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tenantops/tenant-operator/test/localstack"
)

// enableEnv turns the end-to-end tests on.
const enableEnv = "TENANTOPS_E2E"

// stack is the running local stack, set by TestMain when the tests are enabled.
var stack *Stack

// Stack is the local cluster of hack/dev-cluster.sh in a directory of its own, and the operator
// running against it as a separate process.
type Stack struct {
	*localstack.Cluster
	operator *localstack.Operator
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
	s.StopBeforeTheEnd("e2e", s.stop)
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
	cluster, err := localstack.Start("tenantops-e2e", localstack.Options{})
	if cluster == nil {
		return nil, err
	}
	s := &Stack{Cluster: cluster}
	if err != nil {
		return s, err
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster up in %s\n", time.Since(began).Round(time.Second))
	if s.operator, err = cluster.StartOperator("operator", true); err != nil {
		return s, err
	}
	fmt.Fprintf(os.Stderr, "e2e: stack with the operator ready in %s (logs in %s)\n", time.Since(began).Round(time.Second), s.Dir)
	return s, nil
}

// stop stops the operator, then the cluster and cert-manager's controllers, once.
func (s *Stack) stop() {
	s.stopOnce.Do(func() {
		if s.operator != nil {
			if err := s.operator.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
			}
		}
		s.Down()
	})
}

// dumpLogs prints the end of the operator's and cert-manager's logs.
func (s *Stack) dumpLogs() { s.DumpLogs(os.Stderr) }

// ApplyFile applies every object of a YAML file with server-side apply, as kubectl apply
// --server-side does.
func (s *Stack) ApplyFile(ctx context.Context, path string) error {
	return s.Cluster.ApplyFile(ctx, path, fieldOwner)
}
