package controllers_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/controllers"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/internal/storage"
	"github.com/tenantops/tenant-operator/test/controlplane"
)

// The suite runs the manager with every controller against a real API server. The webhook is not
// installed, as when it is down, so invalid objects slip past admission and the controllers must
// report them in conditions.
var (
	k8s    client.Client
	env    *controlplane.Env
	scheme = runtime.NewScheme()
)

const operatorNamespace = "tenant-operator-system"

// testClock is the operator's clock for backup freshness and retention; tests move it forward to
// make backups stale or a storage check due. backupCheckInterval is short so a check follows soon
// after the clock moves.
var testClock = clocktesting.NewFakeClock(time.Now())

const backupCheckInterval = 2 * time.Second

// probeTarget is a real HTTPS server that tenants' uptime probes reach; probeTargetDown makes it
// answer 503.
var (
	probeTarget     *httptest.Server
	probeTargetDown atomic.Bool
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := os.MkdirTemp("", "backup-volumes-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		return 1
	}
	defer os.RemoveAll(root)
	backupVolumeRoot = root

	utilruntime.Must(controllers.AddToScheme(scheme))
	ctrl.SetLogger(zap.New(zap.UseDevMode(true), zap.Level(zapLevel())))

	env, err = controlplane.Start(controlplane.Options{ControllerManager: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	k8s, err = client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, "FATAL: create operator namespace:", err)
		return 1
	}
	probeTarget = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if probeTargetDown.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer probeTarget.Close()
	roots := x509.NewCertPool()
	roots.AddCert(probeTarget.Certificate())
	opts := controllers.Options{
		Options: builders.Options{OperatorNamespace: operatorNamespace, DefaultIssuer: v1alpha1.IssuerReference{Name: "selfsigned", Kind: "ClusterIssuer"}},
		Clock:   testClock, BackupCheckInterval: backupCheckInterval, ProbeRootCAs: roots, BackupVolumeRoot: backupVolumeRoot}
	mgrOpts := env.ManagerOptions()
	mgrOpts.Scheme = scheme
	mgrOpts.Cache = controllers.CacheOptions(opts)
	// The manager's own requests pass through operatorRequests, so tests can count what the
	// operator sends, apart from what the tests themselves do.
	mgrConfig := rest.CopyConfig(env.Config)
	mgrConfig.Wrap(operatorRequests.wrap)
	mgr, err := ctrl.NewManager(mgrConfig, mgrOpts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL: create manager:", err)
		return 1
	}
	if err := controllers.SetupWithManager(mgr, opts); err != nil {
		fmt.Fprintln(os.Stderr, "FATAL: set up controllers:", err)
		return 1
	}
	go func() {
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager stopped:", err)
		}
	}()
	return m.Run()
}

// backupVolumeRoot is where the manager finds volume storage claims, one directory per claim.
var backupVolumeRoot string

// backupVolume opens the storage of a volume claim as the manager sees it.
func backupVolume(t *testing.T, claim string) storage.Store {
	t.Helper()
	dir := filepath.Join(backupVolumeRoot, claim)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	store, err := storage.OpenVolume(dir)
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// operatorRequests records the mutating requests the manager sends: method and path.
var operatorRequests requestLog

type requestLog struct {
	mu       sync.Mutex
	requests []string
}

func (l *requestLog) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Method != http.MethodGet {
			// With the query, decoded: a collection delete names its tenant in its label selector.
			query, _ := url.QueryUnescape(req.URL.RawQuery)
			l.mu.Lock()
			l.requests = append(l.requests, req.Method+" "+req.URL.Path+"?"+query)
			l.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

// since returns the requests recorded after mark (a count from mark()) whose path contains one
// of parts.
func (l *requestLog) since(mark int, parts ...string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.requests[mark:] {
		for _, p := range parts {
			if strings.Contains(r, p) {
				out = append(out, r)
				break
			}
		}
	}
	return out
}

func (l *requestLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.requests)
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

func zapLevel() zapcore.Level {
	if os.Getenv("TEST_VERBOSE_LOGS") != "" {
		return -1
	}
	return 2 // errors only; TEST_VERBOSE_LOGS=1 shows the reconcilers' logs
}

// eventually polls check until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
