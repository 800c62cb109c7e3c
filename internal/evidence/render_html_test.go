package evidence

import (
	"bytes"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

func TestHTML(t *testing.T) {
	r := fixture()
	// A tenant's error message read from the cluster, carrying markup.
	d := r.Section(SectionDatabase)
	d.Status, d.Reason = StatusNotMet, `The database reports: <script>alert("x")</script> & more`
	d.Observed = []Fact{{Key: "message", Label: "Message", Value: `<img src=x onerror=alert(1)>`}}
	r.Tenant.DisplayName = "Acme <b>Corp</b>"
	r.summarize()

	var buf bytes.Buffer
	if err := HTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, bad := range []string{"<script", "<img", "<b>Corp"} {
		if strings.Contains(out, bad) {
			t.Errorf("page contains unescaped %q", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; more", "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks escaped %q", want)
		}
	}
	for _, external := range []string{"<link", "url(", "@import", "http://", "https://"} {
		if strings.Contains(out, external) {
			t.Errorf("page is not self-contained: contains %q", external)
		}
	}

	doc, err := html.Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var (
		tags     = map[string]int{}
		sections []*html.Node
		summary  *html.Node
		texts    []string
	)
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			tags[n.Data]++
			if n.Data == "section" {
				sections = append(sections, n)
			}
			if n.Data == "table" && attr(n, "id") == "summary" {
				summary = n
			}
		}
		if n.Type == html.TextNode {
			texts = append(texts, n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if tags["script"] != 0 || tags["img"] != 0 || tags["b"] != 0 || tags["link"] != 0 {
		t.Errorf("markup from values became elements: %v", tags)
	}
	if tags["style"] != 1 {
		t.Errorf("want one inline style element, got %d", tags["style"])
	}
	if len(sections) != len(SectionIDs) {
		t.Fatalf("want %d sections, got %d", len(SectionIDs), len(sections))
	}
	for i, s := range sections {
		if got, want := attr(s, "id"), "s-"+SectionIDs[i]; got != want {
			t.Errorf("section %d: id %q, want %q", i, got, want)
		}
	}
	if summary == nil {
		t.Fatal("no summary table")
	}
	rows := elements(summary, "tr")
	if len(rows) != 1+len(SectionIDs) {
		t.Fatalf("summary: want a header and %d rows, got %d", len(SectionIDs), len(rows))
	}
	wantStatus := map[string]string{SectionBackups: "NOT MET", SectionDatabase: "NOT MET", SectionUptime: "Unknown", SectionIdentity: "Met"}
	for i, id := range SectionIDs {
		cells := elements(rows[i+1], "td")
		if len(cells) != 3 {
			t.Fatalf("summary row %d: %d cells", i, len(cells))
		}
		if want, ok := wantStatus[id]; ok && text(cells[1]) != want {
			t.Errorf("summary row %s: status %q, want %q", id, text(cells[1]), want)
		}
	}
	if got := text(elements(rows[1+indexOf(SectionDatabase)], "td")[2]); got != d.Reason {
		t.Errorf("the reason does not read back as text: %q", got)
	}
	// The backups section has its record table, with the value as text.
	backups := sections[indexOf(SectionBackups)]
	var found bool
	for _, td := range elements(backups, "td") {
		if text(td) == "a|b\nc" {
			found = true
		}
	}
	if !found {
		t.Error("the backups section lacks the stored backup's checksum cell")
	}
	if !strings.Contains(strings.Join(texts, ""), "12 promises met, 2 not met, 1 unknown.") {
		t.Errorf("summary counts: want 12/2/1")
	}
}

func indexOf(id string) int {
	for i, s := range SectionIDs {
		if s == id {
			return i
		}
	}
	return -1
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func elements(n *html.Node, tag string) []*html.Node {
	var out []*html.Node
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && c.Data == tag {
			out = append(out, c)
		}
		out = append(out, elements(c, tag)...)
	}
	return out
}

func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
