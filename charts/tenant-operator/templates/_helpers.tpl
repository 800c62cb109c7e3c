{{/* Name of the chart, for labels. */}}
{{- define "tenant-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the prefix of every object's name. A release named tenant-operator gives the
names config/default uses. */}}
{{- define "tenant-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "tenant-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "tenant-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tenant-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the operator's pods. */}}
{{- define "tenant-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenant-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{/* The label of a shard's pods (sharding.shards above 1), called with the shard's index. */}}
{{- define "tenant-operator.shardLabel" -}}
tenancy.tenantops.io/shard: {{ . | quote }}
{{- end }}

{{/* The operator's image reference. */}}
{{- define "tenant-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "tenant-operator.webhookServiceName" -}}
{{ include "tenant-operator.fullname" . }}-webhook
{{- end }}

{{/* The Secret with the webhook's serving certificate. */}}
{{- define "tenant-operator.webhookSecretName" -}}
{{- if .Values.webhook.certManager.enabled }}
{{- include "tenant-operator.fullname" . }}-webhook-tls
{{- else }}
{{- required "webhook.existingSecret is required when webhook.certManager.enabled is false" .Values.webhook.existingSecret }}
{{- end }}
{{- end }}

{{/* labelList writes a map of labels as k=v,k2=v2, sorted, for the manager's selector flags. */}}
{{- define "tenant-operator.labelList" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* Whether to install one of the monitoring objects, and why, for the templates and NOTES.txt:
"installed (<why>)" or "not installed (<why>)". Called with a dict: root (the chart's context),
key (serviceMonitor, prometheusRule or grafanaDashboard) and kind (the Prometheus Operator kind
whose API decides "auto"). "auto" installs when the cluster serves monitoring.coreos.com/v1/<kind>:
helm install and upgrade ask the cluster's discovery, which lists every kind it serves; helm
template knows only what --api-versions says. The kind, not the group version, decides: a cluster
can serve monitoring.coreos.com/v1 with only some of its CRDs (ServiceMonitor without
PrometheusRule), and installing a kind it does not serve fails the whole release. */}}
{{- define "tenant-operator.monitoring" -}}
{{- $enabled := index .root.Values .key "enabled" }}
{{- $api := printf "monitoring.coreos.com/v1/%s" .kind }}
{{- if and (eq .key "serviceMonitor") (not .root.Values.metrics.enabled) }}
{{- print "not installed (metrics.enabled=false)" }}
{{- else if eq (toString $enabled) "auto" }}
{{- if .root.Capabilities.APIVersions.Has $api }}
{{- printf "installed (the cluster serves %s; %s.enabled=auto)" $api .key }}
{{- else }}
{{- printf "not installed (the cluster does not serve %s; %s.enabled=auto, true installs it anyway)" $api .key }}
{{- end }}
{{- else if $enabled }}
{{- printf "installed (%s.enabled=true)" .key }}
{{- else }}
{{- printf "not installed (%s.enabled=false)" .key }}
{{- end }}
{{- end }}
