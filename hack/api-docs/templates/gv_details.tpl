{{- /* One group/version: its kinds first, then every other type in alphabetical order. */ -}}
{{- define "gvDetails" -}}
{{- $gv := . }}
## {{ $gv.GroupVersionString }}

{{ template "doc" $gv.Doc }}

| kind | scope | short names | categories |
| --- | --- | --- | --- |
{{- range $gv.SortedKinds }}
{{- $type := $gv.TypeForKind . }}
{{- range index $type.Markers "kubebuilder:resource" }}
| {{ markdownRenderTypeLink $type }} | {{ default "Namespaced" .Scope }} | {{ range .ShortName }}`{{ . }}` {{ end }}| {{ range .Categories }}`{{ . }}` {{ end }}|
{{- end }}
{{- end }}

## Kinds
{{ range $gv.SortedKinds }}
{{ template "type" ($gv.TypeForKind .) }}
{{- end }}

## Types
{{ range $gv.SortedTypes }}
{{- if not .GVK }}
{{ template "type" . }}
{{- end }}
{{- end }}
{{- end -}}
