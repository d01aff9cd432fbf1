{{/* The remote-write agent (remote-write.yaml; values `remoteWrite`). */}}
{{- define "edge-metrics.agent.fullname" -}}
{{- printf "%s-agent" (include "edge-metrics.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* Its own app.kubernetes.io/name, so the pair's Service and DaemonSet never take its pods. */}}
{{- define "edge-metrics.agent.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-metrics.name" . }}-agent
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: prometheus-agent
{{- end }}

{{- define "edge-metrics.agent.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edge-metrics.agent.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edge-metrics
{{- with .Values.commonLabels }}
{{ tpl (toYaml .) $ }}
{{- end }}
{{- end }}

{{/* The Secret holding url, username and password or token. */}}
{{- define "edge-metrics.agent.secret" -}}
{{- default (printf "%s-remote-write" (include "edge-metrics.fullname" .)) .Values.remoteWrite.existingSecret -}}
{{- end }}

{{/* Checks the values; renders nothing or fails with the fix. */}}
{{- define "edge-metrics.agent.check" -}}
{{- $rw := .Values.remoteWrite -}}
{{- if not (has $rw.auth (list "basic" "bearer" "none")) -}}
{{- fail (printf "remoteWrite.auth must be basic, bearer or none, got %q" (toString $rw.auth)) -}}
{{- end -}}
{{- if not .Values.hostNetwork -}}
{{- fail "remoteWrite.enabled needs hostNetwork: true: the agent scrapes the exporter and the bridge on the node's loopback, where the bridge's HTTP API listens" -}}
{{- end -}}
{{- range $k := list "cluster" "site" -}}
{{- if not (index $rw.externalLabels $k) -}}
{{- fail (printf "remoteWrite.externalLabels.%s is required: every sample a node sends carries cluster, site and node" $k) -}}
{{- end -}}
{{- end -}}
{{- if not $rw.existingSecret -}}
{{- if not (regexMatch "^https?://[^'\\s]+$" (toString $rw.url)) -}}
{{- fail (printf "remoteWrite.url must be an http:// or https:// URL without spaces or quotes (or set remoteWrite.existingSecret), got %q" (toString $rw.url)) -}}
{{- end -}}
{{- if and (eq $rw.auth "basic") (or (not $rw.username) (not $rw.password)) -}}
{{- fail "remoteWrite.auth basic needs remoteWrite.username and remoteWrite.password (or remoteWrite.existingSecret)" -}}
{{- end -}}
{{- if and (eq $rw.auth "bearer") (not $rw.token) -}}
{{- fail "remoteWrite.auth bearer needs remoteWrite.token (or remoteWrite.existingSecret)" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/*
The agent's prometheus.yml with two placeholders, __REMOTE_WRITE_URL__ and
__REMOTE_WRITE_USERNAME__, that the init container fills from the Secret (Prometheus 2.x reads
neither from a file or the environment). Both sit in single-quoted YAML scalars.
*/}}
{{- define "edge-metrics.agent.config" -}}
{{- $rw := .Values.remoteWrite -}}
{{- $labels := dict "cluster" $rw.externalLabels.cluster "site" $rw.externalLabels.site -}}
{{- range $k, $v := $rw.extraExternalLabels }}{{ $_ := set $labels $k (toString $v) }}{{ end -}}
{{- $_ := set $labels "node" "${NODE_NAME}" -}}
global:
  scrape_interval: {{ $rw.scrapeInterval }}
  scrape_timeout: {{ $rw.scrapeTimeout }}
  external_labels:
    {{- toYaml $labels | nindent 4 }}
scrape_configs:
  - job_name: edge-metrics-exporter
    static_configs:
      - targets: ["127.0.0.1:{{ .Values.ports.metrics }}"]
  {{- if .Values.bridge.enabled }}
  - job_name: shelly-bridge
    metrics_path: /bridge/metrics
    static_configs:
      - targets: ["127.0.0.1:{{ .Values.ports.shellyHttp }}"]
  {{- end }}
  {{- if $rw.selfMetricsRegex }}
  - job_name: prometheus-agent
    static_configs:
      - targets: ["127.0.0.1:{{ $rw.port }}"]
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: {{ $rw.selfMetricsRegex | quote }}
        action: keep
  {{- end }}
  {{- with $rw.extraScrapeConfigs }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
remote_write:
  - url: '__REMOTE_WRITE_URL__'
    {{- if eq $rw.auth "basic" }}
    basic_auth:
      username: '__REMOTE_WRITE_USERNAME__'
      password_file: /etc/prometheus-agent/secret/password
    {{- else if eq $rw.auth "bearer" }}
    authorization:
      type: Bearer
      credentials_file: /etc/prometheus-agent/secret/token
    {{- end }}
    {{- with $rw.queueConfig }}
    queue_config:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $rw.writeRelabelConfigs }}
    write_relabel_configs:
      {{- toYaml . | nindent 6 }}
    {{- end }}
{{- end }}
