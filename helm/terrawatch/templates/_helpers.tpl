{{/* Chart name, truncated for label values. */}}
{{- define "terrawatch.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped base name for all objects. */}}
{{- define "terrawatch.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "terrawatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "terrawatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels for one component: include "terrawatch.selector" (list . "api") */}}
{{- define "terrawatch.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "terrawatch.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "terrawatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "terrawatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "terrawatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "terrawatch.secretName" -}}
{{- printf "%s-secrets" (include "terrawatch.fullname" .) -}}
{{- end -}}

{{/* gRPC address of Triton. */}}
{{- define "terrawatch.tritonUrl" -}}
{{- if .Values.triton.enabled -}}
{{- printf "%s-triton:8001" (include "terrawatch.fullname" .) -}}
{{- else -}}
{{- required "triton.externalUrl is required when triton.enabled=false" .Values.triton.externalUrl -}}
{{- end -}}
{{- end -}}

{{/* Ray Client address of the cluster (KubeRay names the head Service <raycluster>-head-svc). */}}
{{- define "terrawatch.rayAddress" -}}
{{- if .Values.ray.enabled -}}
{{- printf "ray://%s-ray-head-svc:10001" (include "terrawatch.fullname" .) -}}
{{- else -}}
{{- required "ray.externalAddress is required when ray.enabled=false" .Values.ray.externalAddress -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by every terrawatch container: (list . "role" ...) with the database roles
     the container logs in as (owner: migrations; worker: consumer, dispatcher; apiRead/apiWrite: API). */}}
{{- define "terrawatch.env" -}}
{{- $args := . -}}
{{- $ := index . 0 -}}
{{- $vars := dict "owner" "TERRAWATCH_DATABASE_URL" "worker" "TERRAWATCH_WORKER_DATABASE_URL" "apiRead" "TERRAWATCH_API_READ_DATABASE_URL" "apiWrite" "TERRAWATCH_API_WRITE_DATABASE_URL" -}}
{{- $keys := dict "owner" $.Values.postgis.existingSecretKey "worker" $.Values.postgis.workerSecretKey "apiRead" $.Values.postgis.apiReadSecretKey "apiWrite" $.Values.postgis.apiWriteSecretKey -}}
{{- range $role := rest . }}
- name: {{ get $vars $role }}
  valueFrom:
    secretKeyRef:
      name: {{ default (include "terrawatch.secretName" $) $.Values.postgis.existingSecret }}
      key: {{ get $keys $role }}
{{- end }}
{{- with $.Values.postgis }}
{{- if and (rest $args) .sslmode }}
- name: PGSSLMODE
  value: {{ .sslmode | quote }}
- name: PGSSLROOTCERT
  value: {{ if .caSecret.name }}{{ printf "/etc/terrawatch/postgis-ca/%s" .caSecret.key | quote }}{{ else }}"/etc/ssl/certs/ca-certificates.crt"{{ end }}
{{- end }}
{{- end }}
{{- with $.Values.kafka.security }}
{{- if hasPrefix "SASL_" (upper .protocol) }}
- name: TERRAWATCH_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.security.passwordSecret.name is required with a SASL protocol" .passwordSecret.name }}
      key: {{ .passwordSecret.key }}
{{- end }}
{{- end }}
{{- with $ }}
- name: TERRAWATCH_WEBHOOK_SUBSCRIBERS
  valueFrom:
    secretKeyRef:
      name: {{ default (include "terrawatch.secretName" .) .Values.webhooks.existingSecret }}
      key: {{ .Values.webhooks.existingSecretKey }}
      optional: true
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Kafka CA secret (kafka.security.caSecret): volumeMounts / volumes entries, empty without one. */}}
{{- define "terrawatch.kafkaCaMount" -}}
{{- if .Values.kafka.security.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/terrawatch/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "terrawatch.kafkaCaVolume" -}}
{{- with .Values.kafka.security.caSecret }}
{{- if .name }}
- name: kafka-ca
  secret:
    secretName: {{ .name }}
    items:
      - {key: {{ .key }}, path: {{ .key }}}
{{- end }}
{{- end }}
{{- end -}}

{{/* Ray token authentication for the head, the workers and the Ray drivers (consumer, API). */}}
{{- define "terrawatch.rayTokenSecret" -}}
{{- if .Values.ray.auth.tokenSecret.name -}}
{{- .Values.ray.auth.tokenSecret.name -}}
{{- else if .Values.ray.enabled -}}
{{- printf "%s-ray-token" (include "terrawatch.fullname" .) -}}
{{- else -}}
{{- fail "ray.auth.tokenSecret.name is required with an external Ray cluster (ray.enabled=false) while ray.auth.enabled" -}}
{{- end -}}
{{- end -}}

{{- define "terrawatch.rayAuthEnv" -}}
{{- if .Values.ray.auth.enabled }}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "terrawatch.rayTokenSecret" . }}
      key: {{ .Values.ray.auth.tokenSecret.key }}
{{- end }}
{{- end -}}

{{/* The PostGIS CA secret (postgis.caSecret): volumeMounts / volumes entries, empty without one. */}}
{{- define "terrawatch.postgisCaMount" -}}
{{- if .Values.postgis.caSecret.name }}
- name: postgis-ca
  mountPath: /etc/terrawatch/postgis-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "terrawatch.postgisCaVolume" -}}
{{- with .Values.postgis.caSecret }}
{{- if .name }}
- name: postgis-ca
  secret:
    secretName: {{ .name }}
    items:
      - {key: {{ .key }}, path: {{ .key }}}
{{- end }}
{{- end }}
{{- end -}}

{{- define "terrawatch.envFrom" -}}
- configMapRef:
    name: {{ include "terrawatch.fullname" . }}-config
{{- end -}}

{{/* Pod-level scheduling and security for terrawatch pods. */}}
{{- define "terrawatch.podSpecCommon" -}}
serviceAccountName: {{ include "terrawatch.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
