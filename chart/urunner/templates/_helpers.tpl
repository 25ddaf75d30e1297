{{/* Name of the chart, overridable. */}}
{{- define "urunner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, with the chart name unless it contains it. */}}
{{- define "urunner.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "urunner.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "urunner.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "urunner.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "urunner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "urunner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "urunner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "urunner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "urunner.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Secret holding the credentials, or "" when there is none. */}}
{{- define "urunner.credentialsSecret" -}}
{{- if .Values.credentials.existingSecret }}
{{- .Values.credentials.existingSecret }}
{{- else if .Values.credentials.env }}
{{- include "urunner.fullname" . }}
{{- end }}
{{- end }}

{{/* Labels of the push receiver's objects. */}}
{{- define "urunner.webhookLabels" -}}
{{ include "urunner.labels" . }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "urunner.webhookSelectorLabels" -}}
{{ include "urunner.selectorLabels" . }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* The state ConfigMap: config.stateConfigMap, else one per release. */}}
{{- define "urunner.stateConfigMap" -}}
{{- .Values.config.stateConfigMap | default (printf "%s-state" (include "urunner.fullname" .)) }}
{{- end }}

{{/*
The CronJob's schedule as a run reads it (URUNNER_CONF_SCHEDULE), to step
its forecasts over the runs to come: robfig/cron syntax as Kubernetes
reads spec.schedule, with spec.timeZone as a CRON_TZ= prefix.
kubectl urunner plan and run set it again from the CronJob itself.
*/}}
{{- define "urunner.schedule" -}}
{{- if .Values.timeZone }}
{{- printf "CRON_TZ=%s %s" .Values.timeZone .Values.schedule }}
{{- else }}
{{- .Values.schedule }}
{{- end }}
{{- end }}

{{/*
The rules a run needs where it watches workloads: cluster-wide (a
ClusterRole, cluster mode) or in one namespace (a Role, namespaced mode).
Called with (dict "root" $ "namespace" NS), NS empty for cluster mode. Each
rule is here because the binary makes that request, and only when the
values enable the feature that makes it.
*/}}
{{- define "urunner.runRules" -}}
{{- $v := .root.Values }}
{{- if .namespace }}
# Tell a missing namespace from an empty one: urunner reads this namespace's
# own Namespace object, by name, only when every LIST in it came back empty.
- apiGroups: [""]
  resources: [namespaces]
  resourceNames: [{{ .namespace | quote }}]
  verbs: [get]
{{- else }}
# Find the namespaces labelled urunner=enable (a label selector: a list
# cannot be narrowed to names).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list]
{{- end }}
{{- $apps := without $v.workloadKinds "Rollout" }}
{{- if $apps }}
# The workload kinds of workloadKinds. list: find them, page by page;
# get: read one again after a conflicting PATCH, and follow its rollout
# (config.verifyRollout); patch: the restart annotation (config.restartMode
# pin: the image too){{ if has "Rollout" $v.workloadKinds }}; the Deployments Argo Rollouts take their
# templates from (spec.workloadRef) are read and pinned through the same rule{{ end }}. No create, update or delete.
- apiGroups: [apps]
  resources:
    {{- range $apps }}
    - {{ lower . }}s
    {{- end }}
  verbs: [list, get, patch]
{{- end }}
{{- if has "Rollout" $v.workloadKinds }}
# Argo Rollouts (workloadKinds Rollout), alike: patch sets spec.restartAt
# and urunner's records on the Rollout (pin: the image).
- apiGroups: [argoproj.io]
  resources: [rollouts]
  verbs: [list, get, patch]
{{- if not (has "Deployment" $v.workloadKinds) }}
# A Rollout whose template lives in a Deployment (spec.workloadRef): get
# reads that template, patch sets its images (pin mode, and restarts a
# gate binds to a digest). Deployments are not listed.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, patch]
{{- end }}
{{- end }}
{{- if or $v.runningPods $v.config.verifyRollout }}
# runningPods: the digests the workloads' ready pods run, from one LIST of
# pods {{ if .namespace }}in this namespace{{ else }}(cluster-wide, or per watched namespace){{ end }} a run;
# config.verifyRollout: what a rolled-out workload's pods run (is the
# restart delivered?), one LIST of its namespace's pods.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
{{- end }}
{{- if $v.events }}
# events: an Event on each workload restarted, or whose lookup failed.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}
{{- if $v.pullSecretAuth }}
# pullSecretAuth: the pull secrets a workload names, in its own namespace,
# read by name (get, never list){{ if $v.pullSecretNames }}, only those of pullSecretNames{{ end }}.
- apiGroups: [""]
  resources: [secrets]
  {{- with $v.pullSecretNames }}
  resourceNames: {{ toJson . }}
  {{- end }}
  verbs: [get]
# ...and the workload's ServiceAccount, for the pull secrets it names.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [get]
{{- end }}
{{- end }}
