package evidence

import (
	"html/template"
	"io"
)

// HTML writes the report as one self-contained web page (inline style, no scripts, no external
// assets) for an auditor who does not know Kubernetes: the same parts as the Markdown. Every value
// is escaped by html/template, so text read from the cluster or storage cannot add markup.
func HTML(w io.Writer, r Report) error {
	name := r.Tenant.Name
	if r.Tenant.DisplayName != "" {
		name = r.Tenant.DisplayName + " (" + r.Tenant.Name + ")"
	}
	identity := [][2]string{{"Customer", r.Tenant.Name}, {"Unique ID", orDash(r.Tenant.UID)}}
	if r.Tenant.CreatedAt != nil {
		identity = append(identity, [2]string{"Customer since", formatTime(*r.Tenant.CreatedAt)})
	}
	if r.Tenant.Namespace != "" {
		identity = append(identity, [2]string{"Isolated area (namespace)", r.Tenant.Namespace})
	}
	identity = append(identity, [2]string{"Report made", formatTime(r.GeneratedAt)}, [2]string{"Report format", r.APIVersion})
	return htmlReport.Execute(w, struct {
		Name     string
		Identity [][2]string
		Report
	}{name, identity, r})
}

// statusClass is the CSS class that colours a status.
func statusClass(s Status) string {
	switch s {
	case StatusMet:
		return "met"
	case StatusNotMet:
		return "notmet"
	}
	return "unknown"
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"status": statusWord,
	"class":  statusClass,
	"source": sourceText,
	"inc":    func(i int) int { return i + 1 },
	"anchor": func(id string) string { return "s-" + id },
	"cellOf": func(row map[string]string, key string) string { return row[key] },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Evidence report: {{.Name}}</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; padding: 0 1em; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
td { word-break: break-word; }
.status { font-weight: bold; white-space: nowrap; }
.met { color: #116611; }
.notmet { color: #b00000; }
.unknown { color: #8a5a00; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
</style>
</head>
<body>
<h1>Evidence report: {{.Name}}</h1>
<p>This report shows, for each promise made to the customer, what was agreed, what was found and where it was read. It was produced by reading the cluster and the backup storage; it changes nothing. It names encryption keys by fingerprint only and never contains keys or passwords.</p>
<table>
{{- range .Identity}}
<tr><th scope="row">{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{- end}}
</table>
<h2>Summary</h2>
<p>{{.Summary.Met}} promises met, {{.Summary.NotMet}} not met, {{.Summary.Unknown}} unknown.</p>
<table id="summary">
<tr><th>Promise</th><th>Status</th><th>Why</th></tr>
{{- range $i, $s := .Sections}}
<tr><td><a href="#{{anchor $s.ID}}">{{inc $i}}. {{$s.Title}}</a></td><td class="status {{class $s.Status}}">{{status $s.Status}}</td><td>{{$s.Reason}}</td></tr>
{{- end}}
</table>
{{- range $i, $s := .Sections}}
<section id="{{anchor $s.ID}}">
<h2>{{inc $i}}. {{$s.Title}}: <span class="status {{class $s.Status}}">{{status $s.Status}}</span></h2>
<p><strong>Promise.</strong> {{$s.Promise}}</p>
<p><strong>Finding.</strong> {{$s.Reason}}</p>
{{- if $s.Setting}}
<h3>What was agreed</h3>
<table>
<tr><th>Item</th><th>Value</th></tr>
{{- range $s.Setting}}
<tr><td>{{.Label}}</td><td>{{.Value}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- if $s.Observed}}
<h3>What was found</h3>
<table>
<tr><th>Item</th><th>Value</th></tr>
{{- range $s.Observed}}
<tr><td>{{.Label}}</td><td>{{.Value}}</td></tr>
{{- end}}
</table>
{{- end}}
{{- range $t := $s.Tables}}
<h3>{{$t.Title}}</h3>
{{- if not $t.Rows}}
<p>None.</p>
{{- else}}
<table>
<tr>{{range $t.Columns}}<th>{{.Label}}</th>{{end}}</tr>
{{- range $row := $t.Rows}}
<tr>{{range $t.Columns}}<td>{{cellOf $row .Key}}</td>{{end}}</tr>
{{- end}}
</table>
{{- end}}
{{- end}}
{{- if $s.Proof}}
<h3>Where this was read</h3>
<ul>
{{- range $s.Proof}}
<li>{{source .}}</li>
{{- end}}
</ul>
{{- end}}
</section>
{{- end}}
</body>
</html>
`))
