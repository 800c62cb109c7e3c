// Command conditions prints the condition types and reasons of the API, from the constants and
// doc comments of api/v1alpha1/conditions.go, as the markdown section that ends
// docs/api-reference.md. hack/api-docs.sh runs it after crd-ref-docs, which documents types but
// not untyped constants.
//
// Usage: go run ./hack/api-docs/conditions api/v1alpha1/conditions.go
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// constant is one documented string constant.
type constant struct {
	name, value, doc string
}

// block is one const declaration: its doc comment and its constants in source order.
type block struct {
	doc       string
	constants []constant
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: conditions FILE")
		os.Exit(2)
	}
	blocks, err := read(os.Args[1])
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
	if len(blocks) != 2 {
		fmt.Fprintf(os.Stderr, "error: %s has %d const blocks; want two, the condition types and the reasons\n", os.Args[1], len(blocks))
		os.Exit(1)
	}
	fmt.Print(render(blocks[0], blocks[1]))
}

// read parses file and returns its const blocks of string constants.
func read(file string) ([]block, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	var out []block
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		b := block{doc: gen.Doc.Text()}
		// group is the heading comment ("Backup freshness reasons.") that covers the constants
		// after it that have no doc comment of their own.
		group := ""
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Names) != 1 || len(vs.Values) != 1 {
				return nil, fmt.Errorf("%s: want one name and one value per constant", vs.Names[0].Name)
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return nil, fmt.Errorf("%s: want a string literal", vs.Names[0].Name)
			}
			value, err := strconv.Unquote(lit.Value)
			if err != nil {
				return nil, err
			}
			c := constant{name: vs.Names[0].Name, value: value}
			switch doc := vs.Doc.Text(); {
			case doc == "":
				c.doc = group
			case describes(doc):
				c.doc, group = doc, ""
			default:
				// A heading for this and the following undocumented constants.
				group, c.doc = doc, doc
			}
			b.constants = append(b.constants, c)
		}
		out = append(out, b)
	}
	return out, nil
}

// ownDoc matches a doc comment that describes one constant: it starts with an identifier and a
// colon ("ConditionFirewallReady: the NetworkPolicies exist.") or " is".
var ownDoc = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*(:| is )`)

func describes(doc string) bool { return ownDoc.MatchString(doc) }

// meaning turns a constant's doc comment into the text of its table row: the leading
// "Identifier:" goes, and a leading "Identifier is" names the value instead.
func meaning(c constant) string {
	doc := strings.Join(strings.Fields(c.doc), " ")
	if m := ownDoc.FindStringSubmatch(doc); m != nil {
		rest := doc[len(m[0]):]
		if m[1] == ":" {
			doc = strings.TrimSpace(rest)
		} else {
			doc = "`" + c.value + "` is " + rest
		}
	}
	return strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace(doc)
}

func paragraph(doc string) string {
	return strings.Join(strings.Fields(doc), " ")
}

func render(types, reasons block) string {
	var sb strings.Builder
	sb.WriteString("\n## Conditions\n\n")
	sb.WriteString("The constants of [`conditions.go`](../api/v1alpha1/conditions.go). " + paragraph(types.doc) + "\n\n")
	table(&sb, "type", types.constants)
	sb.WriteString("\n### Reasons\n\n")
	sb.WriteString(paragraph(reasons.doc) + "\n\n")
	table(&sb, "reason", reasons.constants)
	return sb.String()
}

// table writes the documented constants as a table, then those without a doc comment of their own
// as one line per heading comment, in source order.
func table(sb *strings.Builder, what string, constants []constant) {
	fmt.Fprintf(sb, "| %s | meaning |\n| --- | --- |\n", what)
	var headings []string
	grouped := map[string][]string{}
	for _, c := range constants {
		if describes(c.doc) {
			fmt.Fprintf(sb, "| `%s` | %s |\n", c.value, meaning(c))
			continue
		}
		if _, seen := grouped[c.doc]; !seen {
			headings = append(headings, c.doc)
		}
		grouped[c.doc] = append(grouped[c.doc], "`"+c.value+"`")
	}
	for _, h := range headings {
		label := strings.TrimSuffix(paragraph(h), ".")
		if label == "" {
			label = "Without a doc comment"
		}
		fmt.Fprintf(sb, "\n%s (no doc comment of their own): %s.\n", label, strings.Join(grouped[h], ", "))
	}
}
