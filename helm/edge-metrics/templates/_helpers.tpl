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
{{- $_ := set $cfg "reload_bind_address" (include "edge-metrics.managementBind" .) -}}
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
{{- if and .Values.device.hostRoot .Values.device.hostMounts (not (hasKey $cfg "host_root")) -}}
{{- $_ := set $cfg "host_root" .Values.device.hostRoot -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end }}

{{/* management.bindAddress, checked: 127.0.0.1, 0.0.0.0 or "::" (see values.yaml). */}}
{{- define "edge-metrics.managementBind" -}}
{{- $addr := toString .Values.management.bindAddress -}}
{{- if not (has $addr (list "127.0.0.1" "0.0.0.0" "::")) -}}
{{- fail (printf "management.bindAddress must be 127.0.0.1 (this node only), 0.0.0.0 or \"::\" (every address, with an API token), got %q: with the host network a node's own address differs per node, and the probes ask 127.0.0.1" $addr) -}}
{{- end -}}
{{- $addr -}}
{{- end }}

{{/* "true" when the management API listens beyond loopback, else "". */}}
{{- define "edge-metrics.managementExposed" -}}
{{- if ne (include "edge-metrics.managementBind" .) "127.0.0.1" -}}true{{- end -}}
{{- end }}

{{/* Secret name and key of the management API token; name "" when the exporter gets none. */}}
{{- define "edge-metrics.apiTokenSecret" -}}
{{- if .Values.apiToken.existingSecret -}}
{{- .Values.apiToken.existingSecret -}}
{{- else if include "edge-metrics.managementExposed" . -}}
{{- printf "%s-api-token" (include "edge-metrics.fullname" .) -}}
{{- end -}}
{{- end }}
{{- define "edge-metrics.apiTokenKey" -}}
{{- if .Values.apiToken.existingSecret }}{{ .Values.apiToken.key }}{{ else }}token{{ end -}}
{{- end }}

{{/* Secret name and key of the plug token; name "" when the bridge runs without one. */}}
{{- define "edge-metrics.wsTokenSecret" -}}
{{- if .Values.bridge.wsToken.existingSecret -}}
{{- .Values.bridge.wsToken.existingSecret -}}
{{- else if .Values.bridge.wsToken.generate -}}
{{- printf "%s-ws-token" (include "edge-metrics.fullname" .) -}}
{{- end -}}
{{- end }}
{{- define "edge-metrics.wsTokenKey" -}}
{{- if .Values.bridge.wsToken.existingSecret }}{{ .Values.bridge.wsToken.key }}{{ else }}token{{ end -}}
{{- end }}

{{/*
A token for a Secret the chart creates, base64-encoded: the one already in the cluster under
(name, key) when there is one, so upgrades keep it, else 48 random letters and digits (the
character set both daemons accept). `lookup` finds nothing under `helm template`.
*/}}
{{- define "edge-metrics.stableToken" -}}
{{- $old := lookup "v1" "Secret" .root.Release.Namespace .name | default dict -}}
{{- $kept := dig "data" .key "" $old -}}
{{- if $kept -}}
{{- $kept -}}
{{- else -}}
{{- randAlphaNum 48 | b64enc -}}
{{- end -}}
{{- end }}

{{/* The Config Server's resource name (Deployment, Service, PVC). */}}
{{- define "edge-metrics.configServer.fullname" -}}
{{- printf "%s-config-server" (include "edge-metrics.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
The Config Server's selector labels. Its own app.kubernetes.io/name, so the exporter's Service
and DaemonSet (which select name + instance) never take its pods.
*/}}
{{- define "edge-metrics.configServer.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edge-metrics.name" . }}-config-server
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: config-server
{{- end }}

{{- define "edge-metrics.configServer.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edge-metrics.configServer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: edge-metrics
{{- with .Values.commonLabels }}
{{ tpl (toYaml .) $ }}
{{- end }}
{{- end }}

{{/* The URL the exporters use: the Service's cluster DNS name. */}}
{{- define "edge-metrics.configServer.url" -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "edge-metrics.configServer.fullname" .) (include "edge-metrics.namespace" .) .Values.configServer.clusterDomain (int .Values.configServer.port) -}}
{{- end }}

{{/* Secret name and key of the Config Server's operator and device tokens. */}}
{{- define "edge-metrics.configServer.operatorSecret" -}}
{{- default (printf "%s-operator-token" (include "edge-metrics.configServer.fullname" .)) .Values.configServer.operatorToken.existingSecret -}}
{{- end }}
{{- define "edge-metrics.configServer.operatorKey" -}}
{{- if .Values.configServer.operatorToken.existingSecret }}{{ .Values.configServer.operatorToken.key }}{{ else }}token{{ end -}}
{{- end }}
{{- define "edge-metrics.configServer.deviceSecret" -}}
{{- default (printf "%s-device-token" (include "edge-metrics.configServer.fullname" .)) .Values.configServer.deviceToken.existingSecret -}}
{{- end }}
{{- define "edge-metrics.configServer.deviceKey" -}}
{{- if .Values.configServer.deviceToken.existingSecret }}{{ .Values.configServer.deviceToken.key }}{{ else }}token{{ end -}}
{{- end }}
