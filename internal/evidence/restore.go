package evidence

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

// RestoreRequest is what `kubectl tenant restore` asks for.
type RestoreRequest struct {
	// Tenant whose backups are restored; Into receives them (Tenant again to restore in place).
	Tenant, Into string
	// Backup is a backup's id or "latest"; ToTime a moment of the WAL archive. Exactly one is set.
	Backup string
	ToTime *time.Time
	// Schedule whose storage holds the backups; empty lets the operator choose.
	Schedule string
	// InPlace confirms that Into == Tenant: the live objects the backup holds are replaced.
	InPlace bool
}

// restoreWaitInterval is how often --wait reads the TenantRestore.
var restoreWaitInterval = 2 * time.Second

// restoreFlags parses `kubectl tenant restore` into a request; every error is a usage error.
func restoreFlags(fs *flag.FlagSet, name string, args []string, stderr io.Writer) (RestoreRequest, error) {
	var req RestoreRequest
	fs.StringVar(&req.Backup, "backup", "", "the logical backup's id (kubectl tenant backups lists them), or latest")
	toTime := fs.String("to-time", "", "restore to this moment (RFC 3339, e.g. 2026-07-01T12:00:00Z), from physical backups and the WAL archive")
	fs.StringVar(&req.Into, "into", "", "the tenant that receives the restore: a new, ready tenant, or TENANT itself with --in-place")
	fs.StringVar(&req.Schedule, "schedule", "", "the BackupPolicy schedule whose storage holds the backups (default: the operator picks the first of the method needed)")
	fs.BoolVar(&req.InPlace, "in-place", false, "confirm restoring TENANT into itself: the objects the backup holds replace the live ones")
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		req.Tenant, args = args[0], args[1:]
	}
	if err := parse(fs, name, args, stderr); err != nil {
		return req, err
	}
	switch {
	case req.Tenant == "":
		return req, usageError(name + ": TENANT is required")
	case req.Into == "":
		return req, usageError(name + ": --into is required (a new tenant, or TENANT itself with --in-place)")
	case (req.Backup == "") == (*toTime == ""):
		return req, usageError(name + ": give exactly one of --backup ID|latest and --to-time RFC3339")
	case req.Into == req.Tenant && !req.InPlace:
		return req, usageError(fmt.Sprintf("%s: --into %s restores %s into itself, replacing its live objects; add --in-place to confirm", name, req.Into, req.Tenant))
	case req.Into != req.Tenant && req.InPlace:
		return req, usageError(fmt.Sprintf("%s: --in-place restores a tenant into itself, but --into %s is not %s", name, req.Into, req.Tenant))
	}
	if *toTime != "" {
		t, err := time.Parse(time.RFC3339, *toTime)
		if err != nil {
			return req, usageError(fmt.Sprintf("%s: --to-time %q: want RFC 3339, such as 2026-07-01T12:00:00Z", name, *toTime))
		}
		t = t.UTC()
		req.ToTime = &t
	}
	return req, nil
}

// NewTenantRestore is the TenantRestore the request asks for, named <tenant>-<into>-<unix time>.
func NewTenantRestore(req RestoreRequest, now time.Time) *v1alpha1.TenantRestore {
	tr := &v1alpha1.TenantRestore{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%s-%d", req.Tenant, req.Into, now.Unix())},
		Spec: v1alpha1.TenantRestoreSpec{Tenant: req.Tenant, TargetTenant: req.Into, Schedule: req.Schedule,
			Backup: req.Backup},
	}
	if req.ToTime != nil {
		tr.Spec.PointInTime = &v1alpha1.PointInTimeTarget{Time: &metav1.Time{Time: *req.ToTime}}
	}
	if req.InPlace {
		tr.Spec.ConfirmInPlace = req.Tenant
	}
	return tr
}

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const name = "kubectl tenant restore"
	fs := newFlags(name)
	waitFor := fs.Bool("wait", false, "wait until the restore has Succeeded or Failed")
	timeout := fs.Duration("timeout", 2*time.Hour, "with --wait, how long to wait")
	conn := bindConnection(fs)
	req, err := restoreFlags(fs, name, args, stderr)
	if err != nil {
		return err
	}
	c, err := conn.client()
	if err != nil {
		return err
	}
	return Restore(ctx, c, req, *waitFor, *timeout, stdout, time.Now())
}

// Restore creates the TenantRestore the request asks for and says how to follow it; with wait, it
// then waits until the restore has Succeeded (nil) or Failed (an error), or timeout passes.
func Restore(ctx context.Context, c client.Client, req RestoreRequest, waitFor bool, timeout time.Duration, stdout io.Writer, now time.Time) error {
	tr := NewTenantRestore(req, now)
	if err := c.Create(ctx, tr); err != nil {
		return fmt.Errorf("create TenantRestore %s: %w", tr.Name, err)
	}
	fmt.Fprintf(stdout, "tenantrestore %s created\n", tr.Name)
	if !waitFor {
		fmt.Fprintf(stdout, "watch it with: kubectl get tenantrestore %s -w\n", tr.Name)
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last v1alpha1.TenantRestorePhase
	err := wait.PollUntilContextCancel(ctx, restoreWaitInterval, true, func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
			return false, fmt.Errorf("get TenantRestore %s: %w", tr.Name, err)
		}
		if p := tr.Status.Phase; p != last && p != "" {
			last = p
			fmt.Fprintf(stdout, "%s %s\n", tr.Name, p)
		}
		return tr.Status.Phase == v1alpha1.RestoreSucceeded || tr.Status.Phase == v1alpha1.RestoreFailed, nil
	})
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("TenantRestore %s is still %s after %s; watch it with: kubectl get tenantrestore %s -w", tr.Name, orDash(string(tr.Status.Phase)), timeout, tr.Name)
	case err != nil:
		return err
	case tr.Status.Phase == v1alpha1.RestoreFailed:
		why := "see kubectl describe tenantrestore " + tr.Name
		for _, ctype := range []string{v1alpha1.ConditionStalled, v1alpha1.ConditionReady} {
			if c := meta.FindStatusCondition(tr.Status.Conditions, ctype); c != nil && c.Message != "" {
				why = c.Reason + ": " + c.Message
				break
			}
		}
		return fmt.Errorf("TenantRestore %s failed: %s", tr.Name, why)
	}
	return nil
}
