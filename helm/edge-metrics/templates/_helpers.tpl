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

{{/*
The exporter's config.yaml for every node without an entry under `nodes:`: the chart's
`config` plus the keys the chart owns. Its shelly.device_id is the placeholder __NODE_NAME__,
which the seed script replaces with the node's name (the plug's alias).
*/}}
{{- define "edge-metrics.config" -}}
{{- include "edge-metrics.nodeConfig" (dict "root" . "node" "") -}}
{{- end }}

{{/*
The exporter's config.yaml for one node: (dict "root" $ "node" <name>), "" for the chart's
shared config. `config`, then nodes.<name>.config merged over it (maps key by key, anything
else replaced), then the keys the chart owns for every pod (ports, bind address, bridge URL,
tegrastats source, host_root), then the plug: nodes.<name>.shellyDevice, else a
shelly.device_id of the merged config, else the node's name.
*/}}
{{- define "edge-metrics.nodeConfig" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $cfg := deepCopy ($v.config | default dict) -}}
{{- $entry := dict -}}
{{- if .node -}}
{{- $entry = include "edge-metrics.nodeEntry" (dict "root" $root "node" .node) | fromYaml -}}
{{- $cfg = mergeOverwrite $cfg (deepCopy ($entry.config | default dict)) -}}
{{- end -}}
{{- $_ := set $cfg "port" (int $v.ports.metrics) -}}
{{- $_ := set $cfg "reload_port" (int $v.ports.management) -}}
{{- $_ := set $cfg "reload_bind_address" (include "edge-metrics.managementBind" $root) -}}
{{- $shelly := default dict $cfg.shelly -}}
{{- if not $v.bridge.enabled -}}
{{- $_ := set $shelly "enabled" false -}}
{{- end -}}
{{- $_ := set $shelly "server_url" (printf "http://localhost:%d" (int $v.ports.shellyHttp)) -}}
{{- if and $v.bridge.enabled (ne (toString $shelly.enabled) "false") -}}
{{- if $entry.shellyDevice -}}
{{- $_ := set $shelly "device_id" (toString $entry.shellyDevice) -}}
{{- else if not $shelly.device_id -}}
{{- $_ := set $shelly "device_id" (default "__NODE_NAME__" .node) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $cfg "shelly" $shelly -}}
{{- $t := dict -}}
{{- if eq $v.tegrastats.mode "host" -}}
{{- $_ := set $t "path" $v.tegrastats.path -}}
{{- else if eq $v.tegrastats.mode "logfile" -}}
{{- $_ := set $t "logfile" $v.tegrastats.logfile -}}
{{- else if eq $v.tegrastats.mode "replay" -}}
{{- $_ := set $t "replay" $v.tegrastats.replayFile -}}
{{- else if eq $v.tegrastats.mode "sysfs" -}}
{{- $_ := set $t "sysfs" true -}}
{{- else -}}
{{- fail (printf "tegrastats.mode must be host, logfile, replay or sysfs, got %q" $v.tegrastats.mode) -}}
{{- end -}}
{{- $_ := set $cfg "tegrastats" $t -}}
{{- if and $v.device.hostRoot (or $v.device.hostMounts (eq $v.tegrastats.mode "sysfs")) (not (hasKey $cfg "host_root")) -}}
{{- $_ := set $cfg "host_root" $v.device.hostRoot -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end }}

{{/*
nodes.<name> checked, as YAML: (dict "root" $ "node" <name>). A node name is a DNS subdomain
(what `kubectl get nodes` shows); an entry holds only config, shellyDevice, seedMode and
powerBudgetWatts, and its config leaves alone what every pod shares.
*/}}
{{- define "edge-metrics.nodeEntry" -}}
{{- $name := .node -}}
{{- $entry := index .root.Values.nodes $name | default dict -}}
{{- if not (kindIs "map" $entry) -}}
{{- fail (printf "nodes.%s must be a map with config, shellyDevice, seedMode or powerBudgetWatts, got %v" $name $entry) -}}
{{- end -}}
{{- if or (gt (len $name) 240) (not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$" $name)) -}}
{{- fail (printf "nodes: %q is not a Kubernetes node name (lower-case letters, digits, '-' and '.', at most 240 characters): use the name `kubectl get nodes` shows" $name) -}}
{{- end -}}
{{- range $k, $_ := $entry -}}
{{- if not (has $k (list "config" "shellyDevice" "seedMode" "powerBudgetWatts")) -}}
{{- fail (printf "nodes.%s.%s is not a known key: an entry takes config, shellyDevice, seedMode and powerBudgetWatts" $name $k) -}}
{{- end -}}
{{- end -}}
{{- with $entry.config -}}
{{- if not (kindIs "map" .) -}}
{{- fail (printf "nodes.%s.config must be a map of config.yaml keys, got %v" $name .) -}}
{{- end -}}
{{- range $k := list "port" "reload_port" "reload_bind_address" "tegrastats" -}}
{{- if hasKey $entry.config $k -}}
{{- fail (printf "nodes.%s.config.%s cannot differ per node: every pod of the DaemonSet shares it (set ports, management.bindAddress or tegrastats for all nodes)" $name $k) -}}
{{- end -}}
{{- end -}}
{{- if and (kindIs "map" .shelly) (hasKey (.shelly | default dict) "server_url") -}}
{{- fail (printf "nodes.%s.config.shelly.server_url cannot differ per node: the bridge is in the same pod on ports.shellyHttp" $name) -}}
{{- end -}}
{{- end -}}
{{- with $entry.shellyDevice -}}
{{- if not (regexMatch "^[A-Za-z0-9._~-]{1,128}$" (toString .)) -}}
{{- fail (printf "nodes.%s.shellyDevice must be a plug's device id or alias (letters, digits, '.', '_', '-', '~'), e.g. shellyplugsg3-8cbfea99a7f8, got %q" $name (toString .)) -}}
{{- end -}}
{{- end -}}
{{- with $entry.seedMode -}}
{{- if not (has . (list "ifChanged" "ifAbsent" "always")) -}}
{{- fail (printf "nodes.%s.seedMode must be ifChanged, ifAbsent or always, got %q" $name (toString .)) -}}
{{- end -}}
{{- end -}}
{{- if hasKey $entry "powerBudgetWatts" -}}
{{- if not (or (kindIs "float64" $entry.powerBudgetWatts) (kindIs "int64" $entry.powerBudgetWatts) (kindIs "int" $entry.powerBudgetWatts)) -}}
{{- fail (printf "nodes.%s.powerBudgetWatts must be a number of watts (0: no budget alert for this node), got %v" $name $entry.powerBudgetWatts) -}}
{{- end -}}
{{- end -}}
{{- toYaml $entry -}}
{{- end }}

{{/*
The ConfigMap's config entries: config.yaml (every node without an entry under `nodes:`) and,
per entry, node-<name>.yaml (and node-<name>.mode with its own seedMode). The pods' checksum
annotation hashes the same text.
*/}}
{{- define "edge-metrics.configData" -}}
config.yaml: |
  {{- include "edge-metrics.config" . | nindent 2 }}
{{- range $name := keys (.Values.nodes | default dict) | sortAlpha }}
{{- $entry := include "edge-metrics.nodeEntry" (dict "root" $ "node" $name) | fromYaml }}
node-{{ $name }}.yaml: |
  {{- include "edge-metrics.nodeConfig" (dict "root" $ "node" $name) | nindent 2 }}
{{- with $entry.seedMode }}
node-{{ $name }}.mode: {{ . | quote }}
{{- end }}
{{- end }}
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
