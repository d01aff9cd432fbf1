{{/* Chart name. */}}
{{- define "edge-metrics.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release already contains the chart name. */}}
{{- define "edge-metrics.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "edge-metrics.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-metrics.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "edge-metrics.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edge-metrics.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edge-metrics
{{- with .Values.commonLabels }}
{{ tpl (toYaml .) $ }}
{{- end }}
{{- end }}

{{/* image reference: registry/repository[:tag][@digest]; tag defaults to appVersion. */}}
{{- define "edge-metrics.image" -}}
{{- $img := .image -}}
{{- $ref := printf "%s/%s" $img.registry $img.repository | trimPrefix "/" -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $ref $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (default .root.Chart.AppVersion ($img.tag | toString)) -}}
{{- end -}}
{{- end }}

{{- define "edge-metrics.namespace" -}}
{{- .Release.Namespace -}}
{{- end }}

{{/* The exporter's config.yaml, rendered from values. */}}
{{- define "edge-metrics.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "port" (int .Values.ports.metrics) -}}
{{- $_ := set $cfg "reload_port" (int .Values.ports.management) -}}
{{- $shelly := default dict $cfg.shelly -}}
{{- if not .Values.bridge.enabled -}}
{{- $_ := set $shelly "enabled" false -}}
{{- end -}}
{{- $_ := set $shelly "server_url" (printf "http://localhost:%d" (int .Values.ports.shellyHttp)) -}}
{{- $_ := set $cfg "shelly" $shelly -}}
{{- $t := dict -}}
{{- if eq .Values.tegrastats.mode "host" -}}
{{- $_ := set $t "path" .Values.tegrastats.path -}}
{{- else if eq .Values.tegrastats.mode "logfile" -}}
{{- $_ := set $t "logfile" .Values.tegrastats.logfile -}}
{{- else if eq .Values.tegrastats.mode "replay" -}}
{{- $_ := set $t "replay" .Values.tegrastats.replayFile -}}
{{- else -}}
{{- fail (printf "tegrastats.mode must be host, logfile or replay, got %q" .Values.tegrastats.mode) -}}
{{- end -}}
{{- $_ := set $cfg "tegrastats" $t -}}
{{- toYaml $cfg -}}
{{- end }}
