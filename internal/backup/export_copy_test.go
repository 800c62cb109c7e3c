package backup

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// convertBlock runs the converter on one COPY block read through wrap, which decides how the
// bytes arrive (whole, one at a time, in halves), and returns the CSV and what follows the block.
func convertBlock(data string, ncols int, wrap func(io.Reader) io.Reader) (csv string, rows int64, rest string, err error) {
	sc := newCopyScanner(wrap(strings.NewReader(data)))
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	rows, err = sc.convert(w, ncols)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	restBytes, _ := io.ReadAll(sc.br)
	return out.String(), rows, string(restBytes), err
}

var readers = map[string]func(io.Reader) io.Reader{
	"whole":    func(r io.Reader) io.Reader { return r },
	"one byte": iotest.OneByteReader,
	"halves":   iotest.HalfReader,
}

// TestCopyToCSV converts COPY text-format rows as pg_dump writes them, and as the format allows,
// to CSV, fed whole and split at every byte, and keeps what follows the end marker unread.
func TestCopyToCSV(t *testing.T) {
	tests := []struct {
		name  string
		ncols int
		in    string
		want  string
		rows  int64
	}{
		{"plain", 2, "1\tabc\n2\tdef\n", "\"1\",\"abc\"\r\n\"2\",\"def\"\r\n", 2},
		{"no rows", 3, "", "", 0},
		{"NULL and the empty string", 3, "\\N\t\t\\N\n\t\\N\t\n", ",\"\",\r\n\"\",,\"\"\r\n", 2},
		{"NULL alone in a one-column row is an empty line", 1, "\\N\n\n", "\r\n\"\"\r\n", 2},
		{"escapes pg_dump writes", 1, `a\tb\nc\rd\\e\bf\fg\vh` + "\n", "\"a\tb\nc\rd\\e\bf\fg\vh\"\r\n", 1},
		{"quotes and commas", 2, "say \"hi\", bye\t\"\n", "\"say \"\"hi\"\", bye\",\"\"\"\"\r\n", 1},
		{"octal", 1, `\101\1010\7\08\042\3770` + "\n", "\"AA0\a\x008\"\"\xff0\"\r\n", 1},
		{"hex", 1, `\x41\x4g\xg\x414\x22` + "\n", "\"A\x04gxgA4\"\"\"\r\n", 1},
		{"backslash before any other character", 1, `\q\N\.\,\"` + "\n", "\"qN.,\"\"\"\r\n", 1},
		{`\N inside a value`, 3, `a\N` + "\t" + `\Nx` + "\t" + `\\N` + "\n", "\"aN\",\"Nx\",\"\\N\"\r\n", 1},
		{`\. after the first field is a dot`, 2, "a\t\\.\n", "\"a\",\".\"\r\n", 1},
		{"bytea", 2, `\\x00ff` + "\t" + `\\x` + "\n", "\"\\x00ff\",\"\\x\"\r\n", 1},
		{"unicode", 2, "日本語\t🐘🔐 ñ\n", "\"日本語\",\"🐘🔐 ñ\"\r\n", 1},
		{"a table without columns", 0, "\n\n", "\r\n\r\n", 2},
		{"escape at the end of a value", 2, `\101` + "\t" + `\x4` + "\n", "\"A\",\"\x04\"\r\n", 1},
	}
	for _, tt := range tests {
		for rname, wrap := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				got, rows, rest, err := convertBlock(tt.in+"\\.\n-- after\n", tt.ncols, wrap)
				if err != nil {
					t.Fatal(err)
				}
				if got != tt.want || rows != tt.rows {
					t.Errorf("got %q (%d rows), want %q (%d rows)", got, rows, tt.want, tt.rows)
				}
				if rest != "-- after\n" {
					t.Errorf("left %q after the block, want the next line", rest)
				}
			})
		}
	}
}

func TestCopyToCSVRefusesDamage(t *testing.T) {
	for _, tt := range []struct {
		name, in string
		ncols    int
		want     string
	}{
		{"too few fields", "1\t2\n\\.\n", 3, "row 1 has 2 fields, the COPY statement names 3 columns"},
		{"too many fields", "1\n1\t2\n\\.\n", 1, "row 2 has 2 fields"},
		{"cut off inside a row", "1\t2", 2, "data ends before the end of its COPY block (row 1)"},
		{"cut off between rows", "1\t2\n", 2, "data ends before the end of its COPY block (row 2)"},
		{"damaged end marker", "1\n\\.x\n", 1, `end-of-data marker \. followed by more data`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := convertBlock(tt.in, tt.ncols, readers["whole"])
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCopyToCSVRandomValues writes random values, every byte but NUL included, as COPY TO
// does, converts them in random pieces, and reads the CSV back with a reader that tells a
// quoted empty field from an unquoted one: every value and every NULL comes back exactly.
func TestCopyToCSVRandomValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("\t\n\r\\\"',.N x\b\f\v01789abf")
	for i := 0; i < 200; i++ {
		ncols := 1 + rng.IntN(4)
		var rows [][]*string
		var in strings.Builder
		for r := rng.IntN(5); r > 0; r-- {
			var row []*string
			for c := 0; c < ncols; c++ {
				if rng.IntN(5) == 0 {
					row = append(row, nil)
					continue
				}
				var v []byte
				for n := rng.IntN(8); n > 0; n-- {
					if rng.IntN(3) == 0 {
						v = append(v, byte(1+rng.IntN(255)))
					} else {
						v = append(v, alphabet[rng.IntN(len(alphabet))])
					}
				}
				s := string(v)
				row = append(row, &s)
			}
			rows = append(rows, row)
			in.WriteString(copyTextRow(row))
		}
		in.WriteString("\\.\n")
		wrap := func(r io.Reader) io.Reader { return &randomReader{r: r, rng: rng} }
		got, n, _, err := convertBlock(in.String(), ncols, wrap)
		if err != nil {
			t.Fatalf("case %d: %v\ninput %q", i, err, in.String())
		}
		back, err := readCSV(got)
		if err != nil {
			t.Fatalf("case %d: %v\ncsv %q", i, err, got)
		}
		if n != int64(len(rows)) || !equalRows(back, rows) {
			t.Fatalf("case %d: rows differ after conversion\ninput %q\ncsv   %q", i, in.String(), got)
		}
	}
}

// copyTextRow writes a row as COPY TO's text format does.
func copyTextRow(row []*string) string {
	var b strings.Builder
	for i, v := range row {
		if i > 0 {
			b.WriteByte('\t')
		}
		if v == nil {
			b.WriteString(`\N`)
			continue
		}
		for _, c := range []byte(*v) {
			switch c {
			case '\\':
				b.WriteString(`\\`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			case '\v':
				b.WriteString(`\v`)
			default:
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// readCSV parses RFC 4180 CSV with CRLF records, a NULL being an unquoted empty field.
func readCSV(s string) ([][]*string, error) {
	var rows [][]*string
	for s != "" {
		var row []*string
		for {
			var v *string
			if strings.HasPrefix(s, `"`) {
				var b strings.Builder
				i := 1
				for ; ; i++ {
					if i >= len(s) {
						return nil, fmt.Errorf("unterminated quote")
					}
					if s[i] == '"' {
						if i+1 < len(s) && s[i+1] == '"' {
							b.WriteByte('"')
							i++
							continue
						}
						break
					}
					b.WriteByte(s[i])
				}
				str := b.String()
				v, s = &str, s[i+1:]
			} else if !strings.HasPrefix(s, ",") && !strings.HasPrefix(s, "\r\n") {
				return nil, fmt.Errorf("unquoted value at %q", s)
			}
			row = append(row, v)
			if rest, ok := strings.CutPrefix(s, ","); ok {
				s = rest
				continue
			}
			if rest, ok := strings.CutPrefix(s, "\r\n"); ok {
				s = rest
				break
			}
			return nil, fmt.Errorf("no separator at %q", s)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func equalRows(a, b [][]*string) bool {
	return slices.EqualFunc(a, b, func(x, y []*string) bool {
		return slices.EqualFunc(x, y, func(p, q *string) bool { return (p == nil) == (q == nil) && (p == nil || *p == *q) })
	})
}

// randomReader returns what r has in pieces of random size.
type randomReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (r *randomReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return r.r.Read(p[:1+r.rng.IntN(len(p))])
}

// TestCopyScanner reads a script as pg_restore --data-only writes it (this one from PostgreSQL 18,
// with a quoted table name that holds a line break, a table without columns and a large object)
// and converts each block.
func TestCopyScanner(t *testing.T) {
	script := `--
-- PostgreSQL database dump
--

\restrict 91GGJ6eBRjMUbTWlZO4mK1duh5cQORUYFwCcbJ5lz7ebS7wacu04aPDnWXxCKxJ

SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Data for Name: Mixed "Case" Name; Type: TABLE DATA; Schema: Other Schema; Owner: postgres
--

COPY "Other Schema"."Mixed ""Case""
Name" (id, "Col, 1", b, n) FROM stdin;
1	a\tb\nc\\d"e	\\x00ff	1.50
2		\N	\N
\.


--
-- Data for Name: nocols; Type: TABLE DATA; Schema: public; Owner: postgres
--

COPY public.nocols  FROM stdin;


\.


SELECT pg_catalog.lo_open('16395', 131072);
SELECT pg_catalog.lowrite(0, '\x` + strings.Repeat("68", 100_000) + `');
SELECT pg_catalog.lo_close(0);
COPY public.last (x) FROM stdin;
\.

\unrestrict 91GGJ6eBRjMUbTWlZO4mK1duh5cQORUYFwCcbJ5lz7ebS7wacu04aPDnWXxCKxJ
`
	want := []struct {
		target copyTarget
		csv    string
		rows   int64
	}{
		{copyTarget{"Other Schema", "Mixed \"Case\"\nName", []string{"id", "Col, 1", "b", "n"}},
			"\"1\",\"a\tb\nc\\d\"\"e\",\"\\x00ff\",\"1.50\"\r\n\"2\",\"\",,\r\n", 2},
		{copyTarget{"public", "nocols", nil}, "\r\n\r\n", 2},
		{copyTarget{"public", "last", []string{"x"}}, "", 0},
	}
	for rname, wrap := range readers {
		t.Run(rname, func(t *testing.T) {
			sc := newCopyScanner(wrap(strings.NewReader(script)))
			for i, w := range want {
				got, err := sc.next()
				if err != nil {
					t.Fatalf("block %d: %v", i, err)
				}
				if got.Schema != w.target.Schema || got.Table != w.target.Table || !slices.Equal(got.Columns, w.target.Columns) {
					t.Fatalf("block %d: %+v, want %+v", i, got, w.target)
				}
				var out bytes.Buffer
				bw := bufio.NewWriter(&out)
				rows, err := sc.convert(bw, len(got.Columns))
				if err != nil {
					t.Fatalf("block %d: %v", i, err)
				}
				if out.String() != w.csv || rows != w.rows {
					t.Errorf("block %d: %q (%d rows), want %q (%d rows)", i, out.String(), rows, w.csv, w.rows)
				}
			}
			if _, err := sc.next(); err != io.EOF {
				t.Errorf("after the last block: %v, want io.EOF", err)
			}
			if sc.encoding != "UTF8" {
				t.Errorf("encoding %q, want UTF8", sc.encoding)
			}
		})
	}
}

func TestParseCopyStatement(t *testing.T) {
	for _, tt := range []struct {
		stmt     string
		want     copyTarget
		complete bool
		err      string
	}{
		{stmt: "COPY public.t (a, b) FROM stdin;\n", want: copyTarget{"public", "t", []string{"a", "b"}}, complete: true},
		{stmt: `COPY "a.b"."c, (d)" ("x"")", "y z") FROM stdin;`, want: copyTarget{"a.b", "c, (d)", []string{`x")`, "y z"}}, complete: true},
		{stmt: "COPY public.t  FROM stdin;\n", want: copyTarget{Schema: "public", Table: "t"}, complete: true},
		{stmt: "COPY \"s\".\"open\n", complete: false},
		{stmt: "COPY \"s\".t (\"a\n", complete: false},
		{stmt: "COPY t (a) FROM stdin;\n", err: "no schema"},
		{stmt: "COPY s.t (a) TO stdout;\n", err: "not FROM stdin"},
		{stmt: "COPY s.t (a b) FROM stdin;\n", err: "column list"},
	} {
		got, complete, err := parseCopyStatement(tt.stmt)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%q: error %v, want %q", tt.stmt, err, tt.err)
			}
		case err != nil:
			t.Errorf("%q: %v", tt.stmt, err)
		case complete != tt.complete:
			t.Errorf("%q: complete %v, want %v", tt.stmt, complete, tt.complete)
		case complete && (got.Schema != tt.want.Schema || got.Table != tt.want.Table || !slices.Equal(got.Columns, tt.want.Columns)):
			t.Errorf("%q: %+v, want %+v", tt.stmt, got, tt.want)
		}
	}
}

func TestTableFileNames(t *testing.T) {
	var n tableFileNames
	long := strings.Repeat("ü", 63)
	for _, tt := range []struct{ schema, table, want string }{
		{"public", "users", "tables/public.users.csv"},
		{"public", "Users", "tables/public.Users~2.csv"},
		{"public", "users~2", "tables/public.users~2~2.csv"},
		{"a/b", `c\d:e*f?g"h<i>j|k%l`, "tables/a%2Fb.c%5Cd%3Ae%2Af%3Fg%22h%3Ci%3Ej%7Ck%25l.csv"},
		{"s", "line\nbreak\x7f", "tables/s.line%0Abreak%7F.csv"},
		{"s", "Ünïcødé ✓", "tables/s.Ünïcødé ✓.csv"},
		{"s", "latin1 \xe9t\xe9", "tables/s.latin1 %E9t%E9.csv"},
	} {
		if got := n.name(tt.schema, tt.table); got != tt.want {
			t.Errorf("name(%q, %q) = %q, want %q", tt.schema, tt.table, got, tt.want)
		}
	}
	a, b := n.name(long, long+"a"), n.name(long, long+"b")
	if a == b || len(a) > len("tables/")+maxFileName+len(".csv") || !strings.HasPrefix(a, "tables/üü") {
		t.Errorf("long names %q and %q: want distinct, at most %d bytes", a, b, maxFileName)
	}
}
