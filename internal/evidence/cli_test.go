package evidence

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tenantops/tenant-operator/api/v1alpha1"
)

func TestStatusTable(t *testing.T) {
	now := time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: now.Add(-d)} }
	cond := func(ctype string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: ctype, Status: status, Reason: reason}
	}
	tenants := []v1alpha1.Tenant{
		{ObjectMeta: metav1.ObjectMeta{Name: "zeta"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.TenantSpec{Monitoring: &v1alpha1.MonitoringSpec{Objective: "99.9"}},
			Status: v1alpha1.TenantStatus{
				Conditions: []metav1.Condition{cond(v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonStale),
					cond(v1alpha1.ConditionBackupsFresh, metav1.ConditionFalse, v1alpha1.ReasonStale),
					cond(v1alpha1.ConditionBackupVerified, metav1.ConditionTrue, v1alpha1.ReasonVerified),
					cond(v1alpha1.ConditionUptimeObjectiveMet, metav1.ConditionTrue, v1alpha1.ReasonObjectiveMet)},
				Backups: &v1alpha1.BackupsStatus{LastSuccessTime: at(30 * time.Hour), LastVerificationTime: at(2 * time.Hour)},
				Uptime:  &v1alpha1.UptimeStatus{Ratio30d: "99.95"},
			}},
	}
	var buf bytes.Buffer
	if err := StatusTable(&buf, tenants, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and one line per tenant, got:\n%s", buf.String())
	}
	for i, want := range [][]string{
		{"NAME", "READY", "BACKUPS", "LAST VERIFY", "UPTIME 30D", "OBJECTIVE"},
		{"acme", "False (Stale)", "1d 6h ago", "2h 0m ago (Verified)", "99.95", "99.9 (ObjectiveMet)"},
		{"zeta", "-", "never", "never (-)", "99.5 (-)"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
}

func TestPluginUsage(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		inStderr string
	}{
		{nil, exitUsage, "usage: kubectl tenant"},
		{[]string{"backups"}, exitUsage, "--tenant is required"},
		{[]string{"backups", "acme", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"nonsense"}, exitUsage, `unknown command "nonsense"`},
		{[]string{"evidence"}, exitUsage, "--tenant is required"},
		{[]string{"evidence", "acme", "-o", "pdf"}, exitUsage, `-o "pdf": want markdown, json or html`},
		{[]string{"evidence", "acme", "extra"}, exitUsage, `unexpected argument "extra"`},
		{[]string{"status", "--bogus"}, exitUsage, "flag provided but not defined"},
	} {
		var stdout, stderr bytes.Buffer
		if code := RunPlugin(context.Background(), tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.inStderr) {
			t.Errorf("kubectl tenant %v: exit %d, stderr %q; want %d and %q", tc.args, code, stderr.String(), tc.code, tc.inStderr)
		}
	}
	var stderr bytes.Buffer
	if code := RunCommand(context.Background(), []string{"evidence", "-o", "json"}, &bytes.Buffer{}, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "--tenant is required") {
		t.Errorf("tenant-operator evidence without --tenant: exit %d, %q", code, stderr.String())
	}
}

// TestBackupsTable: kubectl tenant backups prints the backup sections' status and tables, one line
// per backup, a value's newline flattened so that a row stays one line.
func TestBackupsTable(t *testing.T) {
	var out bytes.Buffer
	if err := Backups(&out, fixture()); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{"tenant acme\n", "NOT MET. cold's newest backup is 2d 0h old", "Backups found in storage\n",
		"BACKUP ID             SHA-256 CHECKSUM\n", "20260629T120000Z-abc  a|b c\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("kubectl tenant backups output lacks %q:\n%s", want, got)
		}
	}
}
