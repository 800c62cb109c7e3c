package evidence

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Backups writes the report's backup sections (backups, verification, point in time) as terminal
// tables, for `kubectl tenant backups`: each section's status and reason, then its tables with
// one line per row. Values are printed on one line each (a newline in a value becomes a space).
func Backups(w io.Writer, r Report) error {
	fmt.Fprintf(w, "tenant %s\n", r.Tenant.Name)
	for _, id := range []string{SectionBackups, SectionVerification, SectionPointInTime} {
		s := r.Section(id)
		if s == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s: %s. %s\n", s.Title, statusWord(s.Status), oneLine(s.Reason))
		for _, t := range s.Tables {
			if len(t.Rows) == 0 {
				continue
			}
			fmt.Fprintf(w, "\n%s\n", t.Title)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			labels := make([]string, len(t.Columns))
			for i, c := range t.Columns {
				labels[i] = strings.ToUpper(c.Label)
			}
			fmt.Fprintln(tw, strings.Join(labels, "\t"))
			for _, row := range t.Rows {
				cells := make([]string, len(t.Columns))
				for i, c := range t.Columns {
					cells[i] = oneLine(row[c.Key])
				}
				fmt.Fprintln(tw, strings.Join(cells, "\t"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\t", " ")), " ")
}
