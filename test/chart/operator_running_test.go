package chart

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"go.uber.org/zap/zapcore"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
	"github.com/tenantops/tenant-operator/controllers"
	"github.com/tenantops/tenant-operator/internal/builders"
	"github.com/tenantops/tenant-operator/test/stack"
)

// refusedRequests records every request of a client that the API server refused for another
// reason than a missing object or a conflict: what RBAC or admission would break in a cluster.
type refusedRequests struct {
	mu      sync.Mutex
	refused []string
}

func (r *refusedRequests) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode < 400 || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusConflict {
			return resp, err
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		r.mu.Lock()
		r.refused = append(r.refused, fmt.Sprintf("%s %s: %d %s", req.Method, req.URL.Path, resp.StatusCode, body))
		r.mu.Unlock()
		return resp, nil
	})
}

func (r *refusedRequests) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.refused...)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestOperatorRunsConfined runs the operator itself, every controller with leader election and
// uptime probes, as its ServiceAccount with its generated ClusterRole and the chart's
// admission policies, through two tenants' lives (one deleted with Retain, one with Delete), and
// fails on any request the API server refuses it. The replay in TestOperatorConfinedToItsObjects
// is a model of the operator's requests; this is the operator's code.
func TestOperatorRunsConfined(t *testing.T) {
	setLoggerOnce()
	c := apiServer(t)
	installOperator(t, c)
	ctx := context.Background()
	scheme := runtime.NewScheme()
	utilruntime.Must(controllers.AddToScheme(scheme))
	// The cluster admin, reading the operator's objects with their types.
	admin, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// What the platform operator installs: the policy's storage and its Secrets beside the
	// operator, the issuer. The storage is real: erasing the Delete tenant opens it.
	s3 := stack.StartS3(t)
	credentials := "stringData: {AWS_ACCESS_KEY_ID: " + s3.AccessKey + ", AWS_SECRET_ACCESS_KEY: " + s3.SecretKey + "}\n"
	for _, manifest := range []string{
		"apiVersion: v1\nkind: Secret\nmetadata: {name: backup-storage-hot, namespace: " + releaseNamespace + "}\n" + credentials,
		"apiVersion: v1\nkind: Secret\nmetadata: {name: backup-storage-cold, namespace: " + releaseNamespace + "}\n" + credentials,
		"apiVersion: v1\nkind: Secret\nmetadata: {name: backup-identity, namespace: " + releaseNamespace + "}\nstringData: {identity: AGE-SECRET-KEY-1}\n",
		"apiVersion: cert-manager.io/v1\nkind: ClusterIssuer\nmetadata: {name: shared-ca}\nspec: {selfSigned: {}}\n",
	} {
		createOrUpdate(t, c, object(t, manifest))
	}
	policy := samplePolicy(t, "running-backups")
	for i := range policy.Spec.Schedules {
		s3Spec := policy.Spec.Schedules[i].Storage.S3
		s3Spec.Endpoint, s3Spec.Bucket, s3Spec.Region, s3Spec.Prefix = s3.Endpoint, s3.Bucket, s3.Region, policy.Spec.Schedules[i].Name
	}
	policy.Spec.AllowedRegions = nil
	createOrUpdate(t, c, tenancyObject(t, policy))
	retained := confinedTenant("running-retain", policy.Name)
	deleted := confinedTenant("running-delete", policy.Name)
	deleted.Spec.DeletionPolicy = v1alpha1.DeletionPolicyDelete
	// Delete is confirmed: deleting it erases it, as the operator's own rights allow.
	deleted.Annotations = map[string]string{v1alpha1.AnnotationAllowDelete: "true"}
	// A history in the layout before the shards, which the Monitor reads and then removes.
	createOrUpdate(t, c, object(t, builders.UptimeHistory(retained, operatorOptions(), []byte{1})))

	logs := &bytes.Buffer{}
	managerLogs.set(logs)
	defer managerLogs.set(io.Discard)

	refused := &refusedRequests{}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: operatorSA, Groups: append(operatorGroups, "system:authenticated")}
	cfg.Wrap(refused.wrap)
	opts := controllers.Options{Options: operatorOptions(), BackupCheckInterval: 2 * time.Second}
	mgrOpts := env.ManagerOptions()
	mgrOpts.Scheme = scheme
	mgrOpts.Cache = controllers.CacheOptions(opts)
	mgrOpts.LeaderElection = true
	mgrOpts.LeaderElectionID = "tenant-operator.tenancy.tenantops.io"
	mgrOpts.LeaderElectionNamespace = releaseNamespace
	mgrOpts.LeaderElectionReleaseOnCancel = true
	mgr, err := ctrl.NewManager(cfg, mgrOpts)
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.SetupWithManager(mgr, opts); err != nil {
		t.Fatal(err)
	}
	mgrCtx, stop := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(mgrCtx) }()
	stopManager := func() {
		stop()
		select {
		case err := <-stopped:
			if err != nil {
				t.Errorf("manager: %v", err)
			}
		case <-time.After(time.Minute):
			t.Error("the manager did not stop within a minute")
		}
	}
	defer func() {
		if mgrCtx.Err() == nil {
			stopManager()
		}
	}()

	createOrUpdate(t, c, tenancyObject(t, retained))
	createOrUpdate(t, c, tenancyObject(t, deleted))

	// Everything the operator makes for both, in the tenants' namespaces and its own.
	for _, tenant := range []*v1alpha1.Tenant{retained, deleted} {
		ns := builders.NamespaceName(tenant)
		want := []struct {
			obj       client.Object
			namespace string
			name      string
		}{
			{&corev1.Namespace{}, "", ns},
			{&corev1.ResourceQuota{}, ns, builders.QuotaName},
			{&rbacv1.RoleBinding{}, ns, builders.RoleBindingViewers},
			{&rbacv1.ClusterRoleBinding{}, "", builders.TenantReaderName(tenant)},
			{&corev1.Secret{}, ns, builders.DatabaseSecretName(tenant)},
			{&corev1.Secret{}, ns, builders.DatabaseProbeSecretName(tenant)},
			{&corev1.Secret{}, releaseNamespace, builders.ProbeSecretName(tenant)},
			{&corev1.Secret{}, releaseNamespace, builders.BackupJobSecretName(tenant)},
			{&cmapi.Certificate{}, ns, builders.TenantCertificateName(tenant)},
			{&corev1.Service{}, ns, builders.DatabaseName(tenant)},
			{&corev1.ConfigMap{}, ns, builders.DatabaseConfigName(tenant)},
			{&batchv1.CronJob{}, releaseNamespace, builders.VerifyCronJobName(tenant, "cold")},
		}
		for _, w := range want {
			eventually(t, time.Minute, func() error {
				return admin.Get(ctx, client.ObjectKey{Namespace: w.namespace, Name: w.name}, w.obj)
			})
		}
		eventually(t, 30*time.Second, func() error {
			list := &corev1.SecretList{}
			if err := c.List(ctx, list, client.InNamespace(releaseNamespace), client.MatchingLabels{builders.LabelComponent: builders.ComponentBackupSigning}); err != nil {
				return err
			}
			if len(list.Items) == 0 {
				return fmt.Errorf("no signing key yet")
			}
			return nil
		})
	}

	// It recorded events about the Tenants (in default: they are cluster-scoped) and holds the
	// leader-election Lease.
	eventually(t, 30*time.Second, func() error {
		events := &eventsv1.EventList{}
		if err := admin.List(ctx, events, client.InNamespace("default")); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == "Tenant" && e.Regarding.Name == retained.Name && e.ReportingController != "" {
				return nil
			}
		}
		return fmt.Errorf("no event about Tenant %s among %d", retained.Name, len(events.Items))
	})
	if err := admin.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: mgrOpts.LeaderElectionID}, &coordinationv1.Lease{}); err != nil {
		t.Errorf("the leader-election Lease: %v", err)
	}

	// Both deleted: the finalizer goes once each deletion policy is carried out.
	for _, tenant := range []*v1alpha1.Tenant{retained, deleted} {
		if err := admin.Get(ctx, client.ObjectKey{Name: tenant.Name}, tenant); err != nil { // for its UID
			t.Fatal(err)
		}
		if err := c.Delete(ctx, tenancyObject(t, tenant)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tenant := range []*v1alpha1.Tenant{retained, deleted} {
		eventually(t, time.Minute, func() error {
			err := c.Get(ctx, client.ObjectKey{Name: tenant.Name}, tenancyObject(t, tenant))
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("Tenant %s still there: %v", tenant.Name, err)
		})
	}
	ns := &corev1.Namespace{}
	if err := c.Get(ctx, client.ObjectKey{Name: builders.NamespaceName(retained)}, ns); err != nil || ns.Labels[builders.LabelRetained] != "true" {
		t.Errorf("the retained namespace: %v, labels %v", err, ns.Labels)
	}
	if err := c.Get(ctx, client.ObjectKey{Name: builders.NamespaceName(deleted)}, ns); err == nil && ns.DeletionTimestamp.IsZero() {
		t.Errorf("namespace %s is not being deleted", ns.Name)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: builders.BackupCronJobName(retained, "hot")}, &batchv1.CronJob{}); !apierrors.IsNotFound(err) {
		t.Errorf("the retained tenant's CronJob: %v, want it deleted", err)
	}
	// The erased tenant's data key is gone and the erasure recorded; the retained one's key stays
	// with its backups.
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: builders.DataKeySecretName(deleted)}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("the erased tenant's data key Secret: %v, want it deleted", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: builders.ErasureRecordName(deleted.Name, string(deleted.UID))}, &corev1.ConfigMap{}); err != nil {
		t.Errorf("the erasure record: %v", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: builders.DataKeySecretName(retained)}, &corev1.Secret{}); err != nil {
		t.Errorf("the retained tenant's data key Secret: %v, want it kept", err)
	}

	// Stopping saves the uptime histories (and removes the earlier layout's) and releases the
	// Lease.
	stopManager()
	histories := &corev1.ConfigMapList{}
	if err := c.List(ctx, histories, client.InNamespace(releaseNamespace), client.MatchingLabels{"app.kubernetes.io/component": "uptime-history"}); err != nil || len(histories.Items) == 0 {
		t.Errorf("no uptime history shards after the manager stopped (%v)", err)
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: builders.UptimeHistoryName(retained)}, &corev1.ConfigMap{}); !apierrors.IsNotFound(err) {
		t.Errorf("the earlier layout's history is still there: %v", err)
	}

	for _, r := range refused.all() {
		t.Errorf("the API server refused the operator: %s", r)
	}
	// The recorder sees refusals: one more request on the manager's transport, which the
	// policy refuses.
	probe, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	before := len(refused.all())
	_ = probe.Create(ctx, labelledSecret("kube-system", "recorder-probe"), client.DryRunAll)
	if got := refused.all(); len(got) != before+1 || !strings.Contains(got[len(got)-1], confinePolicy) {
		t.Errorf("the refusal recorder missed a refused request: %v", got[before:])
	}
	managerLogs.set(io.Discard)
	if t.Failed() && strings.TrimSpace(logs.String()) != "" {
		t.Logf("the manager's errors:\n%s", logs.String())
	}
}

// managerLogs receives controller-runtime's log (errors only): discarded, but for the manager
// TestOperatorRunsConfined runs. controller-runtime takes one logger per process, and client
// warnings need one too.
var (
	managerLogs   = &switchedWriter{w: io.Discard}
	setLoggerOnce = sync.OnceFunc(func() {
		ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel), zap.WriteTo(managerLogs)))
	})
)

// switchedWriter writes to one writer at a time, serialized.
type switchedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *switchedWriter) set(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = w
}

func (s *switchedWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
