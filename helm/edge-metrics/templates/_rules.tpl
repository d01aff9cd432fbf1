{{/*
The fleet's alerting rules, as a Prometheus rule file (`groups:`). The one source of the
alerts: templates/prometheusrule.yaml renders it into the PrometheusRule, and
deploy/prometheus/edge-metrics-rules.yaml is this output for ci/rules-file-values.yaml (a test
keeps the two identical; deploy/prometheus/tests/ holds the promtool unit tests).
*/}}
{{- define "edge-metrics.rules" -}}
{{- $r := .Values.prometheusRule -}}
{{- $target := $r.targetSelector -}}
{{- if not $target -}}
{{- $target = printf "job=\"%s\", namespace=\"%s\"" (include "edge-metrics.fullname" .) (include "edge-metrics.namespace" .) -}}
{{- end -}}
{{- $budget := $r.powerBudget -}}
{{- $own := dict -}}
{{- range $name, $entry := (.Values.nodes | default dict) -}}
{{- $e := include "edge-metrics.nodeEntry" (dict "root" $ "node" $name) | fromYaml -}}
{{- if hasKey $e "powerBudgetWatts" -}}
{{- $_ := set $own $name (toString $e.powerBudgetWatts) -}}
{{- end -}}
{{- end -}}
{{- $terms := list -}}
{{- if and $budget.watts (gt (float64 $budget.watts) 0.0) -}}
{{- $others := list -}}
{{- range $name := keys $own | sortAlpha -}}
{{- $others = append $others (printf ", hostname!=\"%s\"" $name) -}}
{{- end -}}
{{- $terms = append $terms (printf "avg_over_time(power_total_watts{%s}[%s]) > %v" (join "" $others | trimPrefix ", ") $budget.window (float64 $budget.watts)) -}}
{{- end -}}
{{- range $name := keys $own | sortAlpha -}}
{{- $w := float64 (get $own $name) -}}
{{- if gt $w 0.0 -}}
{{- $terms = append $terms (printf "avg_over_time(power_total_watts{hostname=\"%s\"}[%s]) > %v" $name $budget.window $w) -}}
{{- end -}}
{{- end -}}
groups:
  - name: edge-metrics
    rules:
      - alert: EdgeMetricsExporterDown
        expr: up{ {{- $target -}} } == 0
        for: {{ $r.for }}
        labels:
          severity: critical
        annotations:
          summary: edge-metrics-exporter at {{ "{{ $labels.instance }}" }} is down
          description: Prometheus could not scrape {{ "{{ $labels.instance }}" }} for {{ $r.for }}. Check the pod on that node (kubectl logs -c exporter) or the service (journalctl -u edge-metrics-exporter).
      - alert: EdgeMetricsTegrastatsStale
        expr: edge_metrics_exporter_collector_up{collector=~"Jetson.*Collector"} == 0
        for: {{ $r.for }}
        labels:
          severity: warning
        annotations:
          summary: tegrastats readings at {{ "{{ $labels.instance }}" }} are missing or stale
          description: The {{ "{{ $labels.collector }}" }} collector has had no fresh tegrastats line for {{ $r.for }}. Check the tegrastats mounts and the exporter log.
      - alert: EdgeMetricsPlugLost
        expr: edge_metrics_exporter_collector_up{collector="ShellyCollector"} == 0
        for: {{ $r.for }}
        labels:
          severity: warning
        annotations:
          summary: Wall-plug power for {{ "{{ $labels.instance }}" }} is missing
          description: The exporter has had no reading from its Shelly plug through shelly-bridge for {{ $r.for }}. Check that the plug dials ws://<node>:{{ .Values.ports.shellyWs }}/<node-name>?token=... (Ws.GetStatus on the plug) and the bridge log.
      - alert: EdgeMetricsThermalWarning
        expr: 'label_replace({__name__=~"jetson_temp_.+_celsius", __name__!="jetson_temp_pmic_celsius"}, "sensor", "$1", "__name__", "jetson_temp_(.+)_celsius") > {{ $r.thermal.warningCelsius }}'
        for: {{ $r.thermal.for }}
        labels:
          severity: warning
        annotations:
          summary: 'Sensor {{ "{{ $labels.sensor }}" }} on {{ "{{ $labels.hostname }}" }} is at {{ "{{ $value }}" }} °C'
          description: The thermal sensor (jetson_temp_<sensor>_celsius) has been above {{ $r.thermal.warningCelsius }} °C for {{ $r.thermal.for }}; the module throttles near its limit.
      - alert: EdgeMetricsThermalCritical
        expr: 'label_replace({__name__=~"jetson_temp_.+_celsius", __name__!="jetson_temp_pmic_celsius"}, "sensor", "$1", "__name__", "jetson_temp_(.+)_celsius") > {{ $r.thermal.criticalCelsius }}'
        for: {{ $r.thermal.for }}
        labels:
          severity: critical
        annotations:
          summary: 'Sensor {{ "{{ $labels.sensor }}" }} on {{ "{{ $labels.hostname }}" }} is at {{ "{{ $value }}" }} °C'
          description: The thermal sensor (jetson_temp_<sensor>_celsius) has been above {{ $r.thermal.criticalCelsius }} °C for {{ $r.thermal.for }}; expect shutdown to protect the module.
      {{- if $terms }}
      - alert: EdgeMetricsPowerBudget
        expr: |-
          {{- range $i, $t := $terms }}
          {{ if $i }}or {{ end }}{{ $t }}
          {{- end }}
        for: {{ $budget.for }}
        labels:
          severity: warning
        annotations:
          summary: '{{ "{{ $labels.hostname }}" }} draws {{ "{{ $value | printf \"%.1f\" }}" }} W from the wall, over its power budget'
          description: The node's wall-plug power (power_total_watts), averaged over {{ $budget.window }}, has been above its budget for {{ $budget.for }} (prometheusRule.powerBudget.watts, or nodes.<node>.powerBudgetWatts).
      {{- end }}
      {{- with $r.extraRules }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
{{- end }}
