{{/* Names, labels and the wiring every template shares. */}}

{{- define "chat-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chat-gateway.fullname" -}}
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

{{- define "chat-gateway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "chat-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: chat-gateway
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "gateway"). */}}
{{- define "chat-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chat-gateway.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "chat-gateway.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The chart's own Secret (keys the existingSecret values do not cover). */}}
{{- define "chat-gateway.secretName" -}}
{{- include "chat-gateway.fullname" . }}
{{- end }}

{{- define "chat-gateway.redisSecret" -}}
{{- default (include "chat-gateway.secretName" .) .Values.redis.existingSecret }}
{{- end }}

{{- define "chat-gateway.llmSecret" -}}
{{- default (include "chat-gateway.secretName" .) .Values.llm.existingSecret }}
{{- end }}

{{- define "chat-gateway.authSecret" -}}
{{- default (include "chat-gateway.secretName" .) .Values.auth.existingSecret }}
{{- end }}

{{- define "chat-gateway.authEnabled" -}}
{{- if or .Values.auth.jwtSecret .Values.auth.existingSecret }}true{{ end }}
{{- end }}

{{/* The bundled Redis runs only when asked for and no other Redis is given. */}}
{{- define "chat-gateway.bundledRedis" -}}
{{- if and .Values.redis.bundled.enabled (not .Values.redis.url) (not .Values.redis.existingSecret) }}true{{ end }}
{{- end }}

{{/* The Redis URL the chart writes into its Secret (not used with redis.existingSecret). */}}
{{- define "chat-gateway.redisUrl" -}}
{{- if .Values.redis.url }}
{{- .Values.redis.url }}
{{- else if include "chat-gateway.bundledRedis" . }}
{{- printf "redis://%s-redis:6379" (include "chat-gateway.fullname" .) }}
{{- else if not .Values.redis.existingSecret }}
{{- fail "set redis.url, redis.existingSecret or redis.bundled.enabled=true: the gateway and the workers share one Redis" }}
{{- end }}
{{- end }}

{{/* ConfigMap with the agent file, only when `agent` is set. */}}
{{- define "chat-gateway.agentConfigMap" -}}
{{- printf "%s-agent" (include "chat-gateway.fullname" .) }}
{{- end }}

{{/* What rolls the pods when it changes: the settings, the Secret, the agent file. */}}
{{- define "chat-gateway.checksum" -}}
{{- $config := include (print $.Template.BasePath "/configmap.yaml") . }}
{{- $secret := include (print $.Template.BasePath "/secret.yaml") . }}
{{- $agent := include (print $.Template.BasePath "/agent-configmap.yaml") . }}
{{- printf "%s%s%s" $config $secret $agent | sha256sum }}
{{- end }}

{{/* Environment of both binaries: the ConfigMap, then the secrets, then extra `env`. */}}
{{- define "chat-gateway.env" -}}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "chat-gateway.redisSecret" . }}
      key: redis-url
- name: OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "chat-gateway.llmSecret" . }}
      key: openai-api-key
      optional: true
{{- if include "chat-gateway.authEnabled" . }}
- name: JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "chat-gateway.authSecret" . }}
      key: jwt-secret
{{- end }}
{{- if .Values.agent }}
- name: AGENT_FILE
  value: /etc/chat-gateway/agent/agent.yaml
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "chat-gateway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "chat-gateway.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
{{- end }}

{{- define "chat-gateway.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.agent }}
- name: agent
  mountPath: /etc/chat-gateway/agent
  readOnly: true
{{- end }}
{{- end }}

{{- define "chat-gateway.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .Values.agent }}
- name: agent
  configMap:
    name: {{ include "chat-gateway.agentConfigMap" . }}
    items:
      - key: agent.yaml
        path: agent.yaml
      {{- range $file, $_ := .Values.agentDocuments }}
      - key: {{ printf "kb-%s" $file }}
        path: {{ printf "kb/%s" $file }}
      {{- end }}
{{- end }}
{{- end }}
