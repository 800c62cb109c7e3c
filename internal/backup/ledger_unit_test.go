package backup

import (
	"strings"
	"testing"

	"github.com/tenantops/tenant-operator/internal/catalog"
)

func TestCallSQLBindsTheSubject(t *testing.T) {
	got, err := callSQL("app.forget")
	if err != nil || got != `SELECT "app"."forget"($1)` {
		t.Fatalf("callSQL: %q, %v", got, err)
	}
	if _, err := callSQL(`app.forget($1); DROP TABLE x; --`); err == nil {
		t.Fatal("an injected function name was accepted")
	}
}

func TestReplayScriptQuotesForPsqlAndBinds(t *testing.T) {
	got, err := replayScript([]catalog.LedgerEntry{{Function: "app.forget", Subject: `o'hara\x :v`}, {Function: "crm.erase", Subject: "bob"}})
	if err != nil {
		t.Fatal(err)
	}
	want := "RESET ALL;\n" +
		`\set tenantops_subject 'o''hara\\x :v'` + "\n" + `SELECT "app"."forget"($1) \bind :tenantops_subject \g` + "\n" +
		`\set tenantops_subject 'bob'` + "\n" + `SELECT "crm"."erase"($1) \bind :tenantops_subject \g` + "\n" +
		`\unset tenantops_subject` + "\n"
	if got != want {
		t.Fatalf("script:\n%s\nwant:\n%s", got, want)
	}
	if _, err := replayScript([]catalog.LedgerEntry{{Function: "app.forget", Subject: "a\n\\! rm -rf /"}}); err == nil || !strings.Contains(err.Error(), "control") {
		t.Fatalf("a subject with a newline: %v", err)
	}
}
