{{- /* A doc comment as one paragraph: Go wraps comments at a line width, markdown need not. */ -}}
{{- define "doc" -}}
{{ . | trim | replace "\n\n" "\u2029" | replace "\n" " " | replace "\u2029" "\n\n" | replace "<" "&lt;" | replace ">" "&gt;" }}
{{- end -}}

{{- /* Text in a table cell: pipes escaped, so they do not end the cell. */ -}}
{{- define "cell" -}}
{{ . | replace "|" "\\|" }}
{{- end -}}

{{- /* A doc comment inside a table cell. */ -}}
{{- define "cellDoc" -}}
{{ . | trim | replace "\n\n" "\u2029" | replace "\n" " " | replace "<" "&lt;" | replace ">" "&gt;" | replace "\u2029" "<br />" | replace "|" "\\|" }}
{{- end -}}

{{- /* One type: its doc, its rules, what refers to it and its fields or values. */ -}}
{{- define "type" -}}
{{- $type := . -}}
{{- if markdownShouldRenderType $type }}
### {{ $type.Name }}

{{ if $type.IsAlias }}_Underlying type:_ {{ markdownRenderTypeLink $type.UnderlyingType }}

{{ end -}}
{{ template "doc" $type.Doc }}
{{ with $type.Validation }}
_Validation:_ {{ range $i, $v := . }}{{ if $i }}; {{ end }}{{ $v }}{{ end }}
{{ end }}
{{- with index $type.Markers "kubebuilder:validation:XValidation" }}
_Rules:_
{{- range . }}
- {{ template "doc" .Message }}
{{- end }}
{{ end }}
{{- with index $type.Markers "kubebuilder:printcolumn" }}
_Printer columns_ (`kubectl get`): {{ range $i, $c := . }}{{ if $i }}, {{ end }}{{ $c.Name }} (`{{ $c.JSONPath }}`){{ end }}
{{ end }}
{{- if $type.References }}
_Appears in:_ {{ range $i, $r := $type.SortedReferences }}{{ if $i }}, {{ end }}{{ markdownRenderTypeLink $r }}{{ end }}
{{ end }}
{{- if $type.Members }}
| field | type | description | default | validation |
| --- | --- | --- | --- | --- |
{{- if $type.GVK }}
| `apiVersion` | string | `{{ $type.GVK.Group }}/{{ $type.GVK.Version }}` | | |
| `kind` | string | `{{ $type.GVK.Kind }}` | | |
{{- end }}
{{- range $type.Members }}
| `{{ .Name }}`{{ if or (index .Markers "required") (index .Markers "kubebuilder:validation:Required") }} (required){{ end }} | {{ markdownRenderType .Type }} | {{ if eq .Name "metadata" }}Standard object metadata.{{ else }}{{ template "cellDoc" .Doc }}{{ end }} | {{ with .Default }}`{{ template "cell" (. | replace "{  }" "{}") }}`{{ end }} | {{ template "validation" . }} |
{{- end }}
{{ end }}
{{- if $type.EnumValues }}
| value | meaning |
| --- | --- |
{{- range $type.EnumValues }}
| `{{ .Name }}` | {{ template "cellDoc" .Doc }} |
{{- end }}
{{ end }}
{{- end }}
{{- end -}}

{{- /* A field's validation: the schema's limits and patterns, and its CEL rules by their message. */ -}}
{{- define "validation" -}}
{{- $parts := list -}}
{{- range .Validation }}{{ if not (has . (list "Optional: {}" "Required: {}")) }}{{ $parts = append $parts . }}{{ end }}{{ end -}}
{{- /* Rules of the field's type are listed with the type; here only the field's own. */ -}}
{{- $typeRules := index .Type.Markers "kubebuilder:validation:XValidation" -}}
{{- with .Type.UnderlyingType }}{{ $typeRules = concat $typeRules (index .Markers "kubebuilder:validation:XValidation") }}{{ end -}}
{{- range index .Markers "kubebuilder:validation:XValidation" }}{{ if not (has . $typeRules) }}{{ $parts = append $parts (printf "rule: %s" (.Message | replace "<" "&lt;" | replace ">" "&gt;")) }}{{ end }}{{ end -}}
{{ template "cell" (join "<br />" $parts) }}
{{- end -}}
