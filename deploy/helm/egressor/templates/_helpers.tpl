{{/*
Names and labels, the same as `egressor manifests` builds them (exporter/src/manifests).
*/}}

{{/* Objects' name prefix: the release name when it contains "egressor", else <release>-egressor. */}}
{{- define "egressor.fullname" -}}
{{- if contains "egressor" .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-egressor" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Selector labels of a component: (dict "root" $ "component" "agent"). */}}
{{- define "egressor.selectorLabels" -}}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/name: egressor
{{- end -}}

{{/* Every object's labels: the selector labels, the version and Helm's own. */}}
{{- define "egressor.labels" -}}
{{ include "egressor.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The image of both components: repository:tag, the tag defaulting to appVersion. */}}
{{- define "egressor.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The agent's config.yaml: agent.config as YAML. */}}
{{- define "egressor.agentConfig" -}}
{{ toYaml .Values.agent.config }}
{{- end -}}
