package evidence

import (
	"bytes"
	"context"
	"flag"
	"io"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

func parseRestore(args ...string) (RestoreRequest, error) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return restoreFlags(fs, "kubectl tenant restore", args, io.Discard)
}

func TestRestoreCreatesTheTenantRestore(t *testing.T) {
	now := time.Unix(1780000000, 0)
	at := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		args []string
		want v1alpha1.TenantRestore
	}{
		{"a backup into a new tenant", []string{"acme", "--backup", "20260629T120000Z-abc", "--into", "acme-copy", "--schedule", "hot"},
			v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "acme-acme-copy-1780000000"},
				Spec: v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "acme-copy", Backup: "20260629T120000Z-abc", Schedule: "hot"}}},
		{"the latest backup in place", []string{"acme", "--backup", "latest", "--into", "acme", "--in-place"},
			v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "acme-acme-1780000000"},
				Spec: v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "acme", Backup: "latest", ConfirmInPlace: "acme"}}},
		{"a moment", []string{"acme", "--to-time", "2026-07-01T14:00:00+02:00", "--into", "acme-noon"},
			v1alpha1.TenantRestore{ObjectMeta: metav1.ObjectMeta{Name: "acme-acme-noon-1780000000"},
				Spec: v1alpha1.TenantRestoreSpec{Tenant: "acme", TargetTenant: "acme-noon", PointInTime: &v1alpha1.PointInTimeTarget{Time: &metav1.Time{Time: at}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseRestore(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			c := fake.NewClientBuilder().WithScheme(Scheme()).Build()
			var out bytes.Buffer
			if err := Restore(context.Background(), c, req, false, time.Minute, &out, now); err != nil {
				t.Fatal(err)
			}
			got := &v1alpha1.TenantRestore{}
			if err := c.Get(context.Background(), client.ObjectKey{Name: tc.want.Name}, got); err != nil {
				t.Fatalf("no TenantRestore %s: %v", tc.want.Name, err)
			}
			if got.Spec.Tenant != tc.want.Spec.Tenant || got.Spec.TargetTenant != tc.want.Spec.TargetTenant ||
				got.Spec.Backup != tc.want.Spec.Backup || got.Spec.Schedule != tc.want.Spec.Schedule ||
				got.Spec.ConfirmInPlace != tc.want.Spec.ConfirmInPlace || (got.Spec.PointInTime == nil) != (tc.want.Spec.PointInTime == nil) {
				t.Errorf("spec = %+v, want %+v", got.Spec, tc.want.Spec)
			}
			if p := tc.want.Spec.PointInTime; p != nil && !got.Spec.PointInTime.Time.Equal(p.Time) {
				t.Errorf("pointInTime = %v, want %v", got.Spec.PointInTime.Time, p.Time)
			}
			if want := "tenantrestore " + tc.want.Name + " created\nwatch it with: kubectl get tenantrestore " + tc.want.Name + " -w\n"; out.String() != want {
				t.Errorf("output %q, want %q", out.String(), want)
			}
		})
	}
}

func TestRestoreWaits(t *testing.T) {
	defer func(d time.Duration) { restoreWaitInterval = d }(restoreWaitInterval)
	restoreWaitInterval = 10 * time.Millisecond
	now := time.Unix(1780000000, 0)
	req := RestoreRequest{Tenant: "acme", Into: "acme-copy", Backup: "latest"}
	for _, tc := range []struct {
		phase   v1alpha1.TenantRestorePhase
		wantErr string
	}{
		{v1alpha1.RestoreSucceeded, ""},
		{v1alpha1.RestoreFailed, "failed: RestoreFailed: job restore-1 failed"},
	} {
		c := fake.NewClientBuilder().WithScheme(Scheme()).WithStatusSubresource(&v1alpha1.TenantRestore{}).Build()
		go func() {
			// The operator: Running, then done.
			tr := &v1alpha1.TenantRestore{}
			for c.Get(context.Background(), client.ObjectKey{Name: "acme-acme-copy-1780000000"}, tr) != nil {
				time.Sleep(5 * time.Millisecond)
			}
			for _, p := range []v1alpha1.TenantRestorePhase{v1alpha1.RestoreRunning, tc.phase} {
				time.Sleep(30 * time.Millisecond)
				tr.Status.Phase = p
				if p == v1alpha1.RestoreFailed {
					meta.SetStatusCondition(&tr.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue,
						Reason: v1alpha1.ReasonRestoreFailed, Message: "job restore-1 failed"})
				}
				if err := c.Status().Update(context.Background(), tr); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		var out bytes.Buffer
		err := Restore(context.Background(), c, req, true, 5*time.Second, &out, now)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: err %v, want %q", tc.phase, err, tc.wantErr)
		}
		if want := "acme-acme-copy-1780000000 Running\nacme-acme-copy-1780000000 " + string(tc.phase) + "\n"; !strings.HasSuffix(out.String(), want) {
			t.Errorf("%s: output %q, want it to end with %q", tc.phase, out.String(), want)
		}
	}

	// Nothing happens: the wait ends at the timeout with how to go on watching.
	c := fake.NewClientBuilder().WithScheme(Scheme()).Build()
	err := Restore(context.Background(), c, req, true, 50*time.Millisecond, io.Discard, now)
	if err == nil || !strings.Contains(err.Error(), "kubectl get tenantrestore acme-acme-copy-1780000000 -w") {
		t.Errorf("timeout: %v", err)
	}
}

func TestRestoreUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		inStderr string
	}{
		{[]string{"restore"}, "TENANT is required"},
		{[]string{"restore", "acme", "--backup", "latest"}, "--into is required"},
		{[]string{"restore", "acme", "--into", "b"}, "exactly one of --backup"},
		{[]string{"restore", "acme", "--into", "b", "--backup", "latest", "--to-time", "2026-07-01T12:00:00Z"}, "exactly one of --backup"},
		{[]string{"restore", "acme", "--into", "acme", "--backup", "latest"}, "add --in-place to confirm"},
		{[]string{"restore", "acme", "--into", "b", "--backup", "latest", "--in-place"}, "--into b is not acme"},
		{[]string{"restore", "acme", "--into", "b", "--to-time", "yesterday"}, `--to-time "yesterday": want RFC 3339`},
		{[]string{"restore", "acme", "--into", "b", "--backup", "latest", "extra"}, `unexpected argument "extra"`},
	} {
		var stdout, stderr bytes.Buffer
		if code := RunPlugin(context.Background(), tc.args, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), tc.inStderr) {
			t.Errorf("kubectl tenant %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), exitUsage, tc.inStderr)
		}
	}
}
