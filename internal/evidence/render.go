package evidence

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// JSON writes the report as indented JSON, the format docs/evidence.schema.json describes.
func JSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// statusWords are how the Markdown names a status.
var statusWords = map[Status]string{StatusMet: "Met", StatusNotMet: "NOT MET", StatusUnknown: "Unknown"}

func statusWord(s Status) string {
	if w, ok := statusWords[s]; ok {
		return w
	}
	return string(s)
}

// Markdown writes the report for people: a summary of every promise, then one part per promise
// with what was agreed, what was found and where it was read, each as a table.
func Markdown(w io.Writer, r Report) error {
	mw := &mdWriter{w: w}
	name := r.Tenant.Name
	if r.Tenant.DisplayName != "" {
		name = r.Tenant.DisplayName + " (" + r.Tenant.Name + ")"
	}
	mw.printf("# Evidence report: %s\n\n", cell(name))
	mw.printf("This report shows, for each promise made to the customer, what was agreed, what was found " +
		"and where it was read. It was produced by reading the cluster and the backup storage; it changes nothing. " +
		"It names encryption keys by fingerprint only and never contains keys or passwords.\n\n")
	rows := [][]string{
		{"Customer", r.Tenant.Name},
		{"Unique ID", orDash(r.Tenant.UID)},
	}
	if r.Tenant.CreatedAt != nil {
		rows = append(rows, []string{"Customer since", formatTime(*r.Tenant.CreatedAt)})
	}
	if r.Tenant.Namespace != "" {
		rows = append(rows, []string{"Isolated area (namespace)", r.Tenant.Namespace})
	}
	rows = append(rows, []string{"Report made", formatTime(r.GeneratedAt)}, []string{"Report format", r.APIVersion})
	mw.table([]string{"", ""}, rows)

	mw.printf("## Summary\n\n%d promises met, %d not met, %d unknown.\n\n", r.Summary.Met, r.Summary.NotMet, r.Summary.Unknown)
	var summary [][]string
	for i, s := range r.Sections {
		summary = append(summary, []string{fmt.Sprintf("%d. %s", i+1, s.Title), statusWord(s.Status), s.Reason})
	}
	mw.table([]string{"Promise", "Status", "Why"}, summary)

	for i, s := range r.Sections {
		mw.printf("## %d. %s: %s\n\n", i+1, cell(s.Title), statusWord(s.Status))
		mw.printf("**Promise.** %s\n\n**Finding.** %s\n\n", s.Promise, s.Reason)
		if len(s.Setting) > 0 {
			mw.printf("### What was agreed\n\n")
			mw.facts(s.Setting)
		}
		if len(s.Observed) > 0 {
			mw.printf("### What was found\n\n")
			mw.facts(s.Observed)
		}
		for _, t := range s.Tables {
			mw.printf("### %s\n\n", cell(t.Title))
			if len(t.Rows) == 0 {
				mw.printf("None.\n\n")
				continue
			}
			header := make([]string, len(t.Columns))
			for i, c := range t.Columns {
				header[i] = c.Label
			}
			body := make([][]string, len(t.Rows))
			for i, row := range t.Rows {
				body[i] = make([]string, len(t.Columns))
				for j, c := range t.Columns {
					body[i][j] = row[c.Key]
				}
			}
			mw.table(header, body)
		}
		if len(s.Proof) > 0 {
			mw.printf("### Where this was read\n\n")
			for _, p := range s.Proof {
				mw.printf("- %s\n", cell(sourceText(p)))
			}
			mw.printf("\n")
		}
	}
	return mw.err
}

// sourceText names a source for people.
func sourceText(s Source) string {
	if s.Kind == "Storage" {
		text := "backup storage " + s.Location
		if s.Field != "" {
			text += ", under " + s.Field + "/"
		}
		return text
	}
	text := s.Kind
	switch {
	case s.Namespace != "" && s.Name != "":
		text += " " + s.Namespace + "/" + s.Name
	case s.Name != "":
		text += " " + s.Name
	case s.Namespace != "":
		text += " objects in " + s.Namespace
	}
	if s.Field != "" {
		text += ", " + s.Field
	}
	return text
}

type mdWriter struct {
	w   io.Writer
	err error
}

func (m *mdWriter) printf(format string, args ...any) {
	if m.err == nil {
		_, m.err = fmt.Fprintf(m.w, format, args...)
	}
}

func (m *mdWriter) facts(facts []Fact) {
	rows := make([][]string, len(facts))
	for i, f := range facts {
		rows[i] = []string{f.Label, f.Value}
	}
	m.table([]string{"Item", "Value"}, rows)
}

func (m *mdWriter) table(header []string, rows [][]string) {
	line := func(cells []string) {
		escaped := make([]string, len(cells))
		for i, c := range cells {
			escaped[i] = cell(c)
		}
		m.printf("| %s |\n", strings.Join(escaped, " | "))
	}
	line(header)
	sep := make([]string, len(header))
	for i := range sep {
		sep[i] = "---"
	}
	m.printf("|%s|\n", strings.Join(sep, "|"))
	for _, r := range rows {
		line(r)
	}
	m.printf("\n")
}

// cell makes text safe inside a Markdown table cell or heading: no line breaks, pipes escaped,
// and no HTML.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(s)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
