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
