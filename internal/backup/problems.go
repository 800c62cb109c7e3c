package backup

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A verification's problems end up in the Tenant's BackupVerified condition, which the tenant's
// users read, and the data they are about (table names, what pg_restore stopped at) comes from the
// tenant's database. So a problem is never raw text from a program or the database: it is one of the
// reasons below followed by a summary this package writes, in which anything taken from the backup
// (an object's name) is quoted, escaped and cut short, and the whole list is bounded in count and
// length. Whatever pg_restore or the scratch server said in their own words goes only to the
// verification job's log, in the operator's namespace (see drill.go).

// Reasons a verification fails; each problem starts with one of them.
const (
	ReasonChecksumMismatch   = "ChecksumMismatch"
	ReasonDataObjectMissing  = "DataObjectMissing"
	ReasonArchiveUnreadable  = "ArchiveUnreadable"
	ReasonRestoreFailed      = "RestoreFailed"
	ReasonTableMissing       = "TableMissing"
	ReasonRowCountMismatch   = "RowCountMismatch"
	ReasonUnexpectedTable    = "UnexpectedTable"
	ReasonLargeObjectsDiffer = "LargeObjectCountMismatch"
	ReasonCountFailed        = "CountFailed"
	// reasonMore stands for the problems left out of a long list.
	reasonMore = "MoreProblems"
)

// Bounds of a verification's problems: a condition message must stay well under the API server's
// 32 KiB, with room for every schedule of a policy.
const (
	maxProblems      = 5
	maxProblemLength = 200
	// maxNameLength bounds one name inside a problem; PostgreSQL's own limit is 63 bytes.
	maxNameLength = 64
)

// problem is one finding about a backup.
type problem struct {
	reason  string
	summary string
}

func newProblem(reason, format string, args ...any) problem {
	return problem{reason: reason, summary: fmt.Sprintf(format, args...)}
}

// String is the problem as stored: its reason, a colon and its summary, at most maxProblemLength
// bytes of printable text on one line.
func (p problem) String() string {
	return truncate(singleLine(p.reason+": "+p.summary), maxProblemLength)
}

// problemStrings renders problems for a verification, at most maxProblems of them: a longer list
// keeps its first maxProblems-1 and says how many more there were.
func problemStrings(ps []problem) []string {
	if len(ps) > maxProblems {
		rest := len(ps) - (maxProblems - 1)
		ps = append(ps[:maxProblems-1:maxProblems-1], newProblem(reasonMore, "and %d more not listed", rest))
	}
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

// quoteName shows a name taken from the backup (a schema, table or function) inside a problem:
// double-quoted with Go's escapes for anything not printable (so no newline, terminal escape or
// invisible character survives), and cut to maxNameLength bytes.
func quoteName(name string) string {
	cut := truncate(name, maxNameLength)
	q := strconv.QuoteToGraphic(cut)
	if cut != name {
		q += "…"
	}
	return q
}

// singleLine replaces every character that is not printable (controls, line breaks, invisible
// formatting such as a right-to-left override) with a space.
func singleLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, s)
}

// truncate cuts s to at most n bytes at a character boundary, marking the cut with "…" (which
// counts toward n).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	cut := n - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ellipsis
}

// tail is the end of s, at most n bytes, starting at a character boundary.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	start := len(s) - n
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return s[start:]
}

// escapeForLog makes a program's output safe to print into a log line by line: printable text
// and newlines pass, anything else (carriage returns, terminal escapes, invisible characters,
// invalid UTF-8) is shown as a Go escape.
func escapeForLog(s string) string {
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, size := utf8.DecodeRuneInString(s[i:])
		w = size
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t' || (r != utf8.RuneError && unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r)):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}
