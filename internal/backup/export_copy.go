package backup

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// This file reads the SQL script `pg_restore --data-only -f -` writes and turns each table's
// COPY block into CSV as it streams, so that no table, row or value is ever held whole: memory is
// the reader's and writer's buffers, whatever the size of the data.
//
// The blocks are in COPY's text format (https://www.postgresql.org/docs/current/sql-copy.html):
// one row per line, fields separated by tabs, \N alone for NULL, backslash escapes for the rest
// (\b \f \n \r \t \v \\, \ and one to three octal digits, \x and one or two hex digits, and a
// backslash before any other character stands for that character), and \. alone on a line ends the
// block. The CSV is RFC 4180: comma-separated, CRLF between records, a header row. A NULL is an
// empty unquoted field and every other value is quoted, "" being the empty string, so NULL and
// empty stay apart (PostgreSQL's `COPY ... FROM ... CSV` reads them back that way) and no value
// has to be seen whole before its first byte is written.

// maxCopyStatement bounds what is read of a COPY statement: 1,600 columns of 63-byte names, each
// quoted with every quote doubled, fit.
const maxCopyStatement = 1 << 20

// copyTarget is the table of one COPY block and the columns its rows hold, in order.
type copyTarget struct {
	Schema, Table string
	Columns       []string
}

// copyScanner finds the COPY blocks in a data-only script.
type copyScanner struct {
	br *bufio.Reader
	// encoding is the script's client_encoding, in which the data is: the database's.
	encoding string
}

func newCopyScanner(r io.Reader) *copyScanner {
	return &copyScanner{br: bufio.NewReaderSize(r, 64<<10)}
}

// next skips to the next COPY statement and returns its table; io.EOF when the script has no more.
// After it, convert must read the block.
func (s *copyScanner) next() (copyTarget, error) {
	for {
		line, err := s.readLine()
		if err != nil {
			return copyTarget{}, err
		}
		if enc, ok := strings.CutPrefix(line, "SET client_encoding = '"); ok {
			s.encoding = strings.TrimSuffix(strings.TrimSpace(enc), "';")
			continue
		}
		if !strings.HasPrefix(line, "COPY ") {
			continue
		}
		// A quoted identifier may hold a line break: read on until the statement is whole.
		stmt := line
		for {
			t, complete, err := parseCopyStatement(stmt)
			if err != nil {
				return copyTarget{}, err
			}
			if complete {
				return t, nil
			}
			more, err := s.readLine()
			if errors.Is(err, io.EOF) {
				return copyTarget{}, fmt.Errorf("script ends inside a COPY statement")
			}
			if err != nil {
				return copyTarget{}, err
			}
			if len(stmt)+len(more) > maxCopyStatement {
				return copyTarget{}, fmt.Errorf("COPY statement longer than %d bytes", maxCopyStatement)
			}
			stmt += more
		}
	}
}

// readLine returns the next line with its newline. Lines other than COPY statements and the
// encoding are not needed whole: a long one (a large object's data) is returned cut short.
func (s *copyScanner) readLine() (string, error) {
	var b []byte
	for {
		chunk, err := s.br.ReadSlice('\n')
		if len(b) < maxCopyStatement {
			b = append(b, chunk[:min(len(chunk), maxCopyStatement-len(b))]...)
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(b) > 0:
			return string(b), nil
		case err != nil:
			return "", err
		}
		return string(b), nil
	}
}

// parseCopyStatement reads `COPY schema.table (col, ...) FROM stdin;` as pg_dump writes it, with
// identifiers quoted where needed. complete is false while a quoted identifier is still open at
// the end of stmt.
func parseCopyStatement(stmt string) (t copyTarget, complete bool, err error) {
	p := &identParser{s: strings.TrimSuffix(stmt, "\n")}
	p.s = strings.TrimPrefix(p.s, "COPY ")
	bad := func(what string) (copyTarget, bool, error) {
		return copyTarget{}, false, fmt.Errorf("unexpected COPY statement (%s): %s", what, quoteName(stmt))
	}
	if t.Schema, complete = p.ident(); !complete {
		return copyTarget{}, false, nil
	}
	if !p.eat(".") {
		return bad("no schema")
	}
	if t.Table, complete = p.ident(); !complete {
		return copyTarget{}, false, nil
	}
	if t.Schema == "" || t.Table == "" {
		return bad("empty name")
	}
	p.spaces()
	if p.eat("(") {
		for {
			col, ok := p.ident()
			if !ok {
				return copyTarget{}, false, nil
			}
			if col == "" {
				return bad("empty column name")
			}
			t.Columns = append(t.Columns, col)
			if p.eat(")") {
				break
			}
			if !p.eat(", ") {
				return bad("column list")
			}
		}
	}
	p.spaces()
	if p.s != "FROM stdin;" {
		return bad("not FROM stdin")
	}
	return t, true, nil
}

// identParser consumes identifiers from the front of s.
type identParser struct{ s string }

// ident reads one identifier, quoted ("a ""b""") or bare; ok is false when a quoted one does not
// end within s.
func (p *identParser) ident() (name string, ok bool) {
	if !strings.HasPrefix(p.s, `"`) {
		end := strings.IndexAny(p.s, ` .,()"`)
		if end < 0 {
			end = len(p.s)
		}
		name, p.s = p.s[:end], p.s[end:]
		return name, true
	}
	var b strings.Builder
	for i := 1; i < len(p.s); i++ {
		if p.s[i] != '"' {
			b.WriteByte(p.s[i])
			continue
		}
		if i+1 < len(p.s) && p.s[i+1] == '"' {
			b.WriteByte('"')
			i++
			continue
		}
		p.s = p.s[i+1:]
		return b.String(), true
	}
	return "", false
}

func (p *identParser) eat(tok string) bool {
	rest, ok := strings.CutPrefix(p.s, tok)
	if ok {
		p.s = rest
	}
	return ok
}

func (p *identParser) spaces() { p.s = strings.TrimLeft(p.s, " ") }

// convert reads the current COPY block through its end marker and writes its rows to w as CSV
// records (no header). ncols is the number of columns the statement named; every row must have
// that many fields.
func (s *copyScanner) convert(w *bufio.Writer, ncols int) (rows int64, err error) {
	c := &copyToCSV{w: w, ncols: ncols, rowStart: true}
	for !c.done {
		// Whatever is buffered, at least one byte: the converter keeps its state between chunks.
		n := max(s.br.Buffered(), 1)
		chunk, perr := s.br.Peek(n)
		if len(chunk) == 0 {
			if errors.Is(perr, io.EOF) {
				return c.rows, fmt.Errorf("data ends before the end of its COPY block (row %d)", c.rows+1)
			}
			return c.rows, perr
		}
		used, cerr := c.feed(chunk)
		if _, err := s.br.Discard(used); err != nil {
			return c.rows, err
		}
		if cerr != nil {
			return c.rows, cerr
		}
		// Flushed chunk by chunk so that a failing destination stops the conversion at once.
		if err := w.Flush(); err != nil {
			return c.rows, err
		}
	}
	return c.rows, nil
}

// csvState is where copyToCSV is within a row.
type csvState int

const (
	stFieldStart     csvState = iota // before a field's first byte (rowStart: the row's first field)
	stStartBackslash                 // a field began with a backslash
	stMaybeNull                      // a field began with \N: NULL if the field ends here
	stMaybeEnd                       // a row began with \.: the end marker if the line ends here
	stField                          // inside a value, its opening quote written
	stBackslash                      // inside a value, after a backslash
	stOctal                          // inside an octal escape
	stHex                            // after \x
	stHexDigit                       // after \x and one hex digit
)

// copyToCSV converts COPY text-format rows to CSV records, one byte of state at a time, across
// chunk boundaries.
type copyToCSV struct {
	w        *bufio.Writer
	ncols    int
	state    csvState
	rowStart bool
	field    int // index of the current field in its row
	acc      int // value of the escape being read
	digits   int // octal digits read
	rows     int64
	done     bool
}

// special are the bytes that end a run of plain data inside a value.
var special = [256]bool{'\t': true, '\n': true, '\\': true, '"': true}

// feed converts p and returns how much of it was used: all of it, or up to and including the end
// marker's newline.
func (c *copyToCSV) feed(p []byte) (int, error) {
	i := 0
	for i < len(p) {
		b := p[i]
		switch c.state {
		case stField:
			j := i
			for j < len(p) && !special[p[j]] {
				j++
			}
			if j > i {
				c.w.Write(p[i:j])
				i = j
				continue
			}
			switch b {
			case '\\':
				c.state = stBackslash
			case '"':
				c.w.WriteString(`""`)
			default: // tab or newline
				c.w.WriteByte('"')
				if err := c.endField(b); err != nil {
					return i, err
				}
			}
		case stFieldStart:
			switch b {
			case '\\':
				c.state = stStartBackslash
			case '\t', '\n':
				if b == '\n' && c.rowStart && c.ncols == 0 {
					c.endRow() // a row of a table without columns
					break
				}
				c.w.WriteString(`""`) // the empty string
				if err := c.endField(b); err != nil {
					return i, err
				}
			default:
				c.w.WriteByte('"')
				c.state = stField
				continue // the byte is data: take it as such
			}
		case stStartBackslash:
			switch {
			case b == 'N':
				c.state = stMaybeNull
			case b == '.' && c.rowStart:
				c.state = stMaybeEnd
			default:
				c.w.WriteByte('"')
				c.state = stBackslash
				continue
			}
		case stMaybeNull:
			if b == '\t' || b == '\n' {
				if err := c.endField(b); err != nil { // NULL: nothing written
					return i, err
				}
				break
			}
			c.w.WriteString(`"N`) // \N inside a longer value is an escaped N
			c.state = stField
			continue
		case stMaybeEnd:
			if b != '\n' {
				return i, fmt.Errorf("row %d: end-of-data marker \\. followed by more data", c.rows+1)
			}
			c.done = true
			return i + 1, nil
		case stBackslash:
			c.escape(b)
		case stOctal:
			if b >= '0' && b <= '7' {
				c.acc = c.acc<<3 | int(b-'0')
				if c.digits++; c.digits == 3 {
					c.emit(byte(c.acc))
					c.state = stField
				}
				break
			}
			c.emit(byte(c.acc))
			c.state = stField
			continue
		case stHex, stHexDigit:
			v, ok := hexValue(b)
			switch {
			case ok && c.state == stHex:
				c.acc, c.state = v, stHexDigit
			case ok:
				c.emit(byte(c.acc<<4 | v))
				c.state = stField
			case c.state == stHex:
				c.emit('x') // \x without a hex digit is an escaped x
				c.state = stField
				continue
			default:
				c.emit(byte(c.acc))
				c.state = stField
				continue
			}
		}
		i++
	}
	return i, nil
}

// escape reads the character after a backslash inside a value.
func (c *copyToCSV) escape(b byte) {
	c.state = stField
	switch b {
	case 'b':
		c.emit('\b')
	case 'f':
		c.emit('\f')
	case 'n':
		c.emit('\n')
	case 'r':
		c.emit('\r')
	case 't':
		c.emit('\t')
	case 'v':
		c.emit('\v')
	case '0', '1', '2', '3', '4', '5', '6', '7':
		c.acc, c.digits, c.state = int(b-'0'), 1, stOctal
	case 'x':
		c.state = stHex
	default:
		c.emit(b) // \\ and a backslash before any other character
	}
}

// emit writes one byte of a value, doubling a quote.
func (c *copyToCSV) emit(b byte) {
	if b == '"' {
		c.w.WriteString(`""`)
		return
	}
	c.w.WriteByte(b)
}

// endField ends the current field at a tab or a newline.
func (c *copyToCSV) endField(sep byte) error {
	c.rowStart = false
	if sep == '\t' {
		c.w.WriteByte(',')
		c.field++
		c.state = stFieldStart
		return nil
	}
	if got := c.field + 1; got != c.ncols {
		return fmt.Errorf("row %d has %d fields, the COPY statement names %d columns", c.rows+1, got, c.ncols)
	}
	c.endRow()
	return nil
}

func (c *copyToCSV) endRow() {
	c.w.WriteString("\r\n")
	c.rows++
	c.field, c.state, c.rowStart = 0, stFieldStart, true
}

func hexValue(b byte) (int, bool) {
	switch {
	case b >= '0' && b <= '9':
		return int(b - '0'), true
	case b >= 'a' && b <= 'f':
		return int(b-'a') + 10, true
	case b >= 'A' && b <= 'F':
		return int(b-'A') + 10, true
	}
	return 0, false
}

// writeCSVHeader writes the header record: the column names, each quoted.
func writeCSVHeader(w *bufio.Writer, columns []string) {
	for i, col := range columns {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteByte('"')
		w.Write(bytes.ReplaceAll([]byte(col), []byte(`"`), []byte(`""`)))
		w.WriteByte('"')
	}
	w.WriteString("\r\n")
}
