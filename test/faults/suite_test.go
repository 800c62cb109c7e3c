package faults

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/test/localstack"
)

// Environment that turns the suite on: make test-faults sets the first, make test the second.
const (
	enableEnv    = "TENANTOPS_FAULTS"
	enableAllEnv = "TENANTOPS_E2E"
	seedEnv      = "FAULTS_SEED"
)

var (
	cluster *localstack.Cluster
	seed    uint64
)

// report collects what each case injected and how long recovery took, printed at the end.
var report struct {
	sync.Mutex
	lines []string
}

func record(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	report.Lock()
	report.lines = append(report.lines, line)
	report.Unlock()
	fmt.Fprintf(os.Stderr, "faults: %s\n", line)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(enableEnv) != "1" && os.Getenv(enableAllEnv) != "1" {
		os.Exit(m.Run()) // every test skips
	}
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	seed = uint64(time.Now().UnixNano())
	if v := os.Getenv(seedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "faults: %s: %v\n", seedEnv, err)
			os.Exit(2)
		}
		seed = s
	}
	fmt.Fprintf(os.Stderr, "faults: seed %d (replay the same faults with %s=%d)\n", seed, seedEnv, seed)
	began := time.Now()
	policy, err := writeAuditPolicy()
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: %v\n", err)
		os.Exit(1)
	}
	defer os.Remove(policy)
	c, err := localstack.Start("tenantops-faults", localstack.Options{AuditPolicy: policy})
	if err != nil {
		fmt.Fprintf(os.Stderr, "faults: cannot start the local stack: %v\n", err)
		if c != nil {
			c.DumpLogs(os.Stderr)
			c.Down()
		}
		os.Exit(1)
	}
	cluster = c
	fmt.Fprintf(os.Stderr, "faults: cluster up in %s (logs in %s)\n", time.Since(began).Round(time.Second), c.Dir)
	c.StopBeforeTheEnd("faults", c.Down)
	code := m.Run()
	report.Lock()
	fmt.Fprintf(os.Stderr, "faults: seed %d; what was injected and how long recovery took:\n  %s\n", seed, strings.Join(report.lines, "\n  "))
	report.Unlock()
	if code != 0 {
		c.DumpLogs(os.Stderr)
	}
	c.Down()
	if code == 0 {
		_ = os.RemoveAll(c.Dir)
	} else {
		fmt.Fprintf(os.Stderr, "faults: logs kept in %s\n", c.Dir)
	}
	os.Exit(code)
}

// requireCluster skips the test unless the suite is enabled, and gives each case its own seeded
// random source (the suite's seed and the case's name), so a case replays alone too.
func requireCluster(t *testing.T) *rand.Rand {
	t.Helper()
	if cluster == nil {
		t.Skipf("fault-injection test: set %s=1 (make test-faults) to run it on the local stack", enableEnv)
	}
	// Each case starts on a whole control plane, whatever the one before did to it.
	if dead, err := cluster.DeadComponents(); err == nil && len(dead) > 0 {
		t.Logf("%s had exited; starting it again", strings.Join(dead, ", "))
		if err := cluster.StartComponents(); err != nil {
			t.Fatal(err)
		}
	}
	var h uint64 = 1469598103934665603
	for _, b := range []byte(t.Name()) {
		h = (h ^ uint64(b)) * 1099511628211
	}
	return rand.New(rand.NewPCG(seed, h))
}

// envInt reads a count from the environment, for the heavier runs the docs name.
func envInt(t *testing.T, name string, fallback int) int {
	v := os.Getenv(name)
	if v == "" {
		return fallback
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// fieldOwner is the field manager of what the suite writes, as a platform operator's kubectl.
const fieldOwner = client.FieldOwner("tenantops-faults")

// newTenant is a small tenant of the sample's shape, without backups.
func newTenant(name string, policy v1alpha1.DeletionPolicy) *v1alpha1.Tenant {
	t := &v1alpha1.Tenant{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.TenantSpec{
			DisplayName:    "Fault injection " + name,
			Hostnames:      []string{name + ".faults.example.com"},
			Database:       v1alpha1.DatabaseSpec{Version: "17", Storage: v1alpha1.DatabaseStorage{Size: resource.MustParse("1Gi")}},
			Access:         v1alpha1.AccessSpec{Admins: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: "admin@" + name + ".example.com"}}},
			DeletionPolicy: policy,
		},
	}
	if policy == v1alpha1.DeletionPolicyDelete {
		t.Annotations = map[string]string{v1alpha1.AnnotationAllowDelete: "true"}
	}
	return t
}

// retrying runs a write until it succeeds, as a GitOps controller does: while the operator is
// down its webhook refuses creates and updates, which is the webhook's failure policy at work.
func retrying(ctx context.Context, what string, write func() error) error {
	delay := 200 * time.Millisecond
	for {
		err := write()
		if err == nil {
			return nil
		}
		if !retriable(err) {
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// retriable tells a refusal because the webhook or API server could not be reached, or a
// conflict, from a refusal of the request itself.
func retriable(err error) bool {
	msg := err.Error()
	return apierrors.IsConflict(err) || apierrors.IsInternalError(err) || apierrors.IsServiceUnavailable(err) ||
		apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || apierrors.IsTooManyRequests(err) ||
		strings.Contains(msg, "failed calling webhook") || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "EOF") || strings.Contains(msg, "connection reset")
}

// create creates a Tenant, retrying while the webhook is away; one that exists already counts.
func create(ctx context.Context, t *v1alpha1.Tenant) error {
	return retrying(ctx, "create Tenant "+t.Name, func() error {
		err := cluster.Client.Create(ctx, t.DeepCopy(), fieldOwner)
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
}

// update changes a Tenant's spec (an editor is added), retrying on conflicts and while the
// webhook is away.
func update(ctx context.Context, name string, change func(*v1alpha1.Tenant)) error {
	return retrying(ctx, "update Tenant "+name, func() error {
		t := &v1alpha1.Tenant{}
		if err := cluster.Client.Get(ctx, types.NamespacedName{Name: name}, t); err != nil {
			return err
		}
		change(t)
		return cluster.Client.Update(ctx, t, fieldOwner)
	})
}

// remove deletes a Tenant; one already gone counts.
func remove(ctx context.Context, name string) error {
	return retrying(ctx, "delete Tenant "+name, func() error {
		err := cluster.Client.Delete(ctx, &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

// password is a tenant's database password, or "" while its Secret does not exist.
func password(ctx context.Context, name string) (string, error) {
	s := &corev1.Secret{}
	t := &v1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name}}
	err := cluster.Client.Get(ctx, types.NamespacedName{Namespace: builders.NamespaceName(t), Name: builders.DatabaseSecretName(t)}, s)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(s.Data["password"]), nil
}

// passwordWatch notes each tenant's database password the first time it exists, so that a
// password regenerated at any later moment (a Secret recreated after a crash) is caught.
type passwordWatch struct {
	mu    sync.Mutex
	first map[string]string
}

func newPasswordWatch() *passwordWatch { return &passwordWatch{first: map[string]string{}} }

// look notes the passwords of the named tenants that exist now and reports any that changed.
func (w *passwordWatch) look(ctx context.Context, names []string) error {
	var errs []error
	for _, name := range names {
		pw, err := password(ctx, name)
		if err != nil || pw == "" {
			continue // the API server may be away; the next look sees it
		}
		w.mu.Lock()
		if old, ok := w.first[name]; !ok {
			w.first[name] = pw
		} else if old != pw {
			errs = append(errs, fmt.Errorf("tenant %s: the database password was regenerated", name))
		}
		w.mu.Unlock()
	}
	return errors.Join(errs...)
}

// every runs look every interval until ctx ends, and returns the first problem it found.
func (w *passwordWatch) every(ctx context.Context, interval time.Duration, names func() []string) <-chan error {
	done := make(chan error, 1)
	go func() {
		var first error
		for {
			if err := w.look(ctx, names()); err != nil && first == nil {
				first = err
			}
			select {
			case <-ctx.Done():
				done <- first
				return
			case <-time.After(interval):
			}
		}
	}()
	return done
}

// auditPolicy logs every write's metadata (not events'), so that a case can tell which process
// wrote what and when.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  resources: [{group: "", resources: [events]}, {group: events.k8s.io, resources: [events]}]
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
`

func writeAuditPolicy() (string, error) {
	f, err := os.CreateTemp("", "faults-audit-*.yaml")
	if err != nil {
		return "", err
	}
	defer f.Close()
	_, err = f.WriteString(auditPolicy)
	return f.Name(), err
}
