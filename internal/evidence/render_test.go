package evidence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apiextensionsvalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/kube-openapi/pkg/validation/spec"
)

// fixture is a report as Gather makes it, with a cell that needs escaping.
func fixture() Report {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Report{APIVersion: APIVersion, Kind: Kind, GeneratedAt: time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC),
		Tenant: Tenant{Name: "acme", DisplayName: "Acme Corp", UID: "uid-1", CreatedAt: &created, Namespace: "tenant-acme", Exists: true}}
	for _, id := range SectionIDs {
		r.Sections = append(r.Sections, Section{ID: id, Title: titles[id].title, Promise: titles[id].promise, Status: StatusMet,
			Reason: "Fine.", Setting: []Fact{}, Observed: []Fact{}, Proof: []Source{}})
	}
	b := r.Section(SectionBackups)
	b.Status, b.Reason = StatusNotMet, "cold's newest backup is 2d 0h old, more than the 1d 2h allowed."
	b.Setting = []Fact{{Key: "backupPolicy", Label: "Backup policy", Value: "standard"}}
	b.Observed = []Fact{{Key: "lastSuccessTime", Label: "Newest backup", Value: "2026-06-29T12:00:00Z"}}
	b.Tables = []*Table{{Key: "stored", Title: "Backups found in storage", Columns: []Column{{"id", "Backup ID"}, {"sha256", "SHA-256 checksum"}},
		Rows: []map[string]string{{"id": "20260629T120000Z-abc", "sha256": "a|b\nc"}}}}
	b.Proof = []Source{{Kind: "Tenant", Name: "acme", Field: "status.backups"}, {Kind: "Storage", Location: "s3://bucket/p?endpoint=s3:9000&region=eu-west-1", Field: "acme/cold"}}
	u := r.Section(SectionUptime)
	u.Status, u.Reason = StatusUnknown, "The operator has not reported availability yet."
	r.summarize()
	return r
}

func TestMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := Markdown(&buf, fixture()); err != nil {
		t.Fatal(err)
	}
	md := buf.String()
	for _, tc := range []struct{ name, want string }{
		{"title names the customer", "# Evidence report: Acme Corp (acme)\n"},
		{"identity table", "| Unique ID | uid-1 |\n"},
		{"summary counts", "13 promises met, 1 not met, 1 unknown."},
		{"summary row of a failed promise", "| 7. Backups | NOT MET | cold's newest backup is 2d 0h old, more than the 1d 2h allowed. |"},
		{"section heading with status", "## 7. Backups: NOT MET\n"},
		{"unknown status", "## 13. Availability: Unknown\n"},
		{"setting as a table", "### What was agreed\n\n| Item | Value |\n|---|---|\n| Backup policy | standard |\n"},
		{"observed table", "| Newest backup | 2026-06-29T12:00:00Z |"},
		{"record table with escaped pipe and no line break", "| 20260629T120000Z-abc | a\\|b c |"},
		{"proof in plain words", "- backup storage s3://bucket/p?endpoint=s3:9000&region=eu-west-1, under acme/cold/\n"},
		{"object proof", "- Tenant acme, status.backups\n"},
		{"report format", "| Report format | evidence.tenantops.io/v1 |"},
	} {
		if !strings.Contains(md, tc.want) {
			t.Errorf("%s: markdown lacks %q\n%s", tc.name, tc.want, md)
		}
	}
	if strings.Count(md, "\n## ") != 1+len(SectionIDs) {
		t.Errorf("want a summary and %d sections, got %d second-level headings", len(SectionIDs), strings.Count(md, "\n## "))
	}
}

func TestCell(t *testing.T) {
	for in, want := range map[string]string{
		"plain":            "plain",
		"a|b":              `a\|b`,
		"two\nlines\there": "two lines here",
		"<script>":         "&lt;script&gt;",
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestJSONMatchesSchema(t *testing.T) {
	var buf bytes.Buffer
	if err := JSON(&buf, fixture()); err != nil {
		t.Fatal(err)
	}
	if err := validateAgainstSchema(t, buf.Bytes()); err != nil {
		t.Fatalf("fixture report does not match docs/evidence.schema.json: %v\n%s", err, buf.String())
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.APIVersion != APIVersion || len(back.Sections) != len(SectionIDs) || back.Section(SectionBackups).Tables[0].Rows[0]["sha256"] != "a|b\nc" {
		t.Errorf("JSON does not round-trip: %+v", back)
	}
}

// The schema must refuse what is wrong, or the test above proves nothing.
func TestSchemaRefusesMalformedReports(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(m map[string]any)
	}{
		{"no apiVersion", func(m map[string]any) { delete(m, "apiVersion") }},
		{"another apiVersion", func(m map[string]any) { m["apiVersion"] = "evidence.tenantops.io/v2" }},
		{"an undocumented field", func(m map[string]any) { m["extra"] = true }},
		{"a status outside met, not-met, unknown", func(m map[string]any) { section(m, 0)["status"] = "ok" }},
		{"a section without a reason", func(m map[string]any) { delete(section(m, 1), "reason") }},
		{"an unknown section", func(m map[string]any) { section(m, 2)["id"] = "mood" }},
		{"a fact without a key", func(m map[string]any) {
			delete(section(m, 6)["setting"].([]any)[0].(map[string]any), "key")
		}},
		{"a table row with a number", func(m map[string]any) {
			section(m, 6)["tables"].([]any)[0].(map[string]any)["rows"].([]any)[0].(map[string]any)["id"] = 7
		}},
		{"a time that is not a time", func(m map[string]any) { m["generatedAt"] = "yesterday" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := JSON(&buf, fixture()); err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			tc.change(m)
			data, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if err := validateAgainstSchema(t, data); err == nil {
				t.Errorf("schema accepts a report with %s", tc.name)
			}
		})
	}
}

func section(m map[string]any, i int) map[string]any {
	return m["sections"].([]any)[i].(map[string]any)
}

// validateAgainstSchema checks a report's JSON against docs/evidence.schema.json with the
// API server's own OpenAPI schema validator (k8s.io/apiextensions-apiserver, already a
// dependency), so no JSON Schema library is added.
func validateAgainstSchema(t *testing.T, data []byte) error {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "evidence.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The validator does not follow $ref: the definitions are put in place first (the schema
	// has no recursion).
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatalf("docs/evidence.schema.json: %v", err)
	}
	defs, _ := generic["definitions"].(map[string]any)
	delete(generic, "definitions")
	inlined, err := json.Marshal(inlineRefs(t, generic, defs))
	if err != nil {
		t.Fatal(err)
	}
	schema := &spec.Schema{}
	if err := json.Unmarshal(inlined, schema); err != nil {
		t.Fatalf("docs/evidence.schema.json: %v", err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return err
	}
	res := apiextensionsvalidation.NewSchemaValidatorFromOpenAPI(schema).Validate(doc)
	if res.IsValid() {
		return nil
	}
	var msgs []string
	for _, e := range res.Errors {
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}

// inlineRefs replaces every {"$ref": "#/definitions/X"} in v with definition X.
func inlineRefs(t *testing.T, v any, defs map[string]any) any {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			name, found := strings.CutPrefix(ref, "#/definitions/")
			def, ok := defs[name]
			if !found || !ok {
				t.Fatalf("docs/evidence.schema.json: unresolvable $ref %q", ref)
			}
			return inlineRefs(t, def, defs)
		}
		out := map[string]any{}
		for k, e := range v {
			out[k] = inlineRefs(t, e, defs)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = inlineRefs(t, e, defs)
		}
		return out
	}
	return v
}
