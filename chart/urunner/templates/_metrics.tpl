{{/*
urunner.metricsSelector: the PromQL label matchers (without braces) that pick
this install's series among what Prometheus scrapes from the Pushgateway:
metrics.prometheusRule.selector, plus the cluster label urunner pushes when
notifications.clusterName (URUNNER_CONF_CLUSTER_NAME) is set. Selecting the
cluster keeps one install's rules to its own cluster when several push to
one Pushgateway, and gives absent() a cluster label to report.
*/}}
{{- define "urunner.metricsSelector" -}}
{{- $m := list -}}
{{- with .Values.metrics.prometheusRule.selector }}{{ $m = append $m . }}{{ end -}}
{{- with .Values.notifications.clusterName }}{{ $m = append $m (printf "cluster=%q" .) }}{{ end -}}
{{- join "," $m -}}
{{- end }}

{{/*
urunner.seconds turns a duration value (dict "name" "value") such as 1h30m
into whole seconds: PromQL compares timestamps in seconds, and Prometheus
before 3.x has no duration literals in expressions. The schema admits only
w, d, h, m, s in that order; this fails on anything else, naming the value.
*/}}
{{- define "urunner.seconds" -}}
{{- $v := toString .value -}}
{{- if not (regexMatch "^([0-9]+w)?([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $v) -}}
{{- fail (printf "%s: want a duration like 30m or 1h30m (units w, d, h, m, s), got %q" .name $v) -}}
{{- end -}}
{{- $units := dict "w" 604800 "d" 86400 "h" 3600 "m" 60 "s" 1 -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+[wdhms]" $v -1 -}}
{{- $total = add $total (mul (regexFind "[0-9]+" . | atoi) (get $units (regexFind "[wdhms]" .))) -}}
{{- end -}}
{{- if le (int $total) 0 -}}
{{- fail (printf "%s: want a duration above 0, got %q" .name $v) -}}
{{- end -}}
{{- $total -}}
{{- end }}

{{/*
urunner.alert renders an alert's labels and annotations: its severity and
metrics.prometheusRule.alertLabels, its runbook text and
metrics.prometheusRule.alertAnnotations. The alert's own keys win.
*/}}
{{- define "urunner.alert" -}}
{{- $r := .root.Values.metrics.prometheusRule -}}
labels:
  {{- merge (dict "severity" .severity) ($r.alertLabels | default dict) | toYaml | nindent 2 }}
annotations:
  {{- merge (dict "summary" .summary "description" .description) ($r.alertAnnotations | default dict) | toYaml | nindent 2 }}
{{- end }}
