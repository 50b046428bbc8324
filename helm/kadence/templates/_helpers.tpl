{{/*
The chart name, or nameOverride.
*/}}
{{- define "kadence.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects, cut to 63 characters (the DNS label limit).
The release name alone when it already contains the chart name.
*/}}
{{- define "kadence.fullname" -}}
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

{{/*
A name derived from the full name with a suffix, still within 63 characters.
Usage: include "kadence.componentName" (list . "redis")
*/}}
{{- define "kadence.componentName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- printf "%s-%s" (include "kadence.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "kadence.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "kadence.labels" -}}
helm.sh/chart: {{ include "kadence.chart" . }}
{{ include "kadence.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kadence
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable across upgrades, so never the chart version.
*/}}
{{- define "kadence.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kadence.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels and selector labels of one component.
Usage: include "kadence.componentLabels" (list . "operator")
*/}}
{{- define "kadence.componentLabels" -}}
{{ include "kadence.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "kadence.componentSelectorLabels" -}}
{{ include "kadence.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
The ServiceAccount of the operator pod.
*/}}
{{- define "kadence.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kadence.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The Kadence image reference.
*/}}
{{- define "kadence.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The Secret holding connection settings: the user's or the chart's.
*/}}
{{- define "kadence.secretName" -}}
{{- default (include "kadence.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
Whether the bundled Redis / PostgreSQL run ("true" or empty).
*/}}
{{- define "kadence.redis.bundled" -}}
{{- if and .Values.redis.enabled (not .Values.externalRedis.url) }}true{{ end }}
{{- end }}

{{- define "kadence.postgresql.bundled" -}}
{{- if and .Values.postgresql.enabled (not .Values.externalDatabase.url) }}true{{ end }}
{{- end }}

{{- define "kadence.redis.fullname" -}}
{{- include "kadence.componentName" (list . "redis") }}
{{- end }}

{{- define "kadence.postgresql.fullname" -}}
{{- include "kadence.componentName" (list . "postgresql") }}
{{- end }}

{{/*
The database role the application connects as.
*/}}
{{- define "kadence.appRole" -}}
{{- if include "kadence.postgresql.bundled" . }}
{{- .Values.postgresql.auth.appUsername }}
{{- else }}
{{- .Values.externalDatabase.appRole }}
{{- end }}
{{- end }}

{{/*
Refuse to render a release that has nowhere to keep its data.
*/}}
{{- define "kadence.validate" -}}
{{- if not .Values.existingSecret }}
{{- if not (or (include "kadence.redis.bundled" .) .Values.externalRedis.url) }}
{{- fail "Kadence needs Redis: set externalRedis.url, enable redis, or give existingSecret" }}
{{- end }}
{{- if not (or (include "kadence.postgresql.bundled" .) .Values.externalDatabase.url) }}
{{- fail "Kadence needs PostgreSQL: set externalDatabase.url, enable postgresql, or give existingSecret" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Pod security context of the Kadence pods.
*/}}
{{- define "kadence.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/*
Container security context of every container.
*/}}
{{- define "kadence.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/*
An environment variable read from the connection Secret.
Usage: include "kadence.secretEnv" (list . "KADENCE_REDIS_URL" "redis-url" false)
*/}}
{{- define "kadence.secretEnv" -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "kadence.secretName" (index . 0) }}
      key: {{ index . 2 }}
      {{- if index . 3 }}
      optional: true
      {{- end }}
{{- end }}

{{/*
Settings every Kadence container shares: connections and configuration.
*/}}
{{- define "kadence.commonEnv" -}}
{{ include "kadence.secretEnv" (list . "KADENCE_DATABASE_URL" "database-url" false) }}
{{ include "kadence.secretEnv" (list . "KADENCE_REDIS_URL" "redis-url" false) }}
- name: KADENCE_APP_ROLE
  value: {{ include "kadence.appRole" . | quote }}
- name: KADENCE_LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: KADENCE_DEFAULT_HANDLER
  value: {{ .Values.config.defaultHandler | quote }}
- name: KADENCE_HISTORY_DAYS
  value: {{ .Values.config.historyDays | quote }}
{{- with .Values.config.webhookAllowedHosts }}
- name: KADENCE_WEBHOOK_ALLOWED_HOSTS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.config.pythonAllowedPrefixes }}
- name: KADENCE_PYTHON_ALLOWED_PREFIXES
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.watchNamespace }}
- name: KADENCE_NAMESPACE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
A writable /tmp for containers with a read-only root filesystem.
*/}}
{{- define "kadence.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}
