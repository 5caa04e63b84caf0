{{/* ---------------------------------------------------------------- names and labels */}}

{{- define "kubesweep.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name when it already contains the chart name. Truncated
so that "<fullname>-collector" and friends stay within 63 characters. */}}
{{- define "kubesweep.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "kubesweep.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. Deliberately NOT app.kubernetes.io/managed-by=kubesweep: that label
marks trial pods (the NetworkPolicy keys on it); Helm's own value is "Helm". */}}
{{- define "kubesweep.labels" -}}
helm.sh/chart: {{ include "kubesweep.chart" . }}
app.kubernetes.io/name: {{ include "kubesweep.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubesweep
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "api"). */}}
{{- define "kubesweep.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubesweep.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "kubesweep.componentLabels" -}}
{{ include "kubesweep.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* ---------------------------------------------------------------- images */}}

{{/* One of the three kubesweep images: (dict "root" $ "service" "dispatcher"). */}}
{{- define "kubesweep.image" -}}
{{- $img := .root.Values.image }}
{{- $repo := printf "%s-%s" $img.repositoryPrefix .service }}
{{- if $img.registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $img.registry) $repo }}{{ end }}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $img.tag) }}
{{- end }}

{{/* ---------------------------------------------------------------- secrets and Redis */}}

{{- define "kubesweep.secretName" -}}
{{- default (include "kubesweep.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{- define "kubesweep.redis.external" -}}
{{- if or .Values.redis.external.url .Values.redis.external.existingSecret }}true{{ end }}
{{- end }}

{{- define "kubesweep.redis.host" -}}
{{- printf "%s-redis" (include "kubesweep.fullname" .) }}
{{- end }}

{{/* The KUBESWEEP_REDIS_URL EnvVar: a Secret reference for an external Redis (its URL may carry
a password), a plain value for the chart's own. */}}
{{- define "kubesweep.redisUrlEnv" -}}
- name: KUBESWEEP_REDIS_URL
{{- include "kubesweep.redisUrlSource" . }}
{{- end }}

{{/* value/valueFrom of an EnvVar holding the Redis URL. */}}
{{- define "kubesweep.redisUrlSource" -}}
{{- if .Values.redis.external.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.external.existingSecret }}
      key: {{ .Values.redis.external.existingSecretKey }}
{{- else if .Values.redis.external.url }}
  valueFrom:
    secretKeyRef:
      name: {{ include "kubesweep.fullname" . }}-redis-url
      key: redis-url
{{- else }}
  value: {{ printf "redis://%s:%v/0" (include "kubesweep.redis.host" .) .Values.redis.port | quote }}
{{- end }}
{{- end }}

{{/* Environment every kubesweep container gets (fields of CommonSettings). */}}
{{- define "kubesweep.commonEnv" -}}
{{ include "kubesweep.redisUrlEnv" . }}
- name: KUBESWEEP_LOG_LEVEL
  value: {{ .Values.common.logLevel | quote }}
- name: KUBESWEEP_LOG_FORMAT
  value: {{ .Values.common.logFormat | quote }}
{{- end }}

{{- define "kubesweep.signingKeyEnv" -}}
- name: KUBESWEEP_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "kubesweep.secretName" . }}
      key: signing-key
{{- end }}

{{- define "kubesweep.apiTokenEnv" -}}
- name: KUBESWEEP_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "kubesweep.secretName" . }}
      key: api-token
{{- end }}

{{/* Settings of the dispatcher's three roles (DispatcherSettings fields). */}}
{{- define "kubesweep.dispatcherEnv" -}}
{{ include "kubesweep.commonEnv" . }}
{{ include "kubesweep.signingKeyEnv" . }}
- name: KUBESWEEP_STORAGE_ROOT
  value: {{ .Values.storage.mountPath | quote }}
- name: KUBESWEEP_COLLECTOR_URL
  value: {{ include "kubesweep.collectorUrl" . | quote }}
- name: KUBESWEEP_MAX_CODE_MB
  value: {{ .Values.api.maxCodeMb | quote }}
{{- if and .Values.storage.persistence.enabled .Values.storage.shareWithTrials }}
- name: KUBESWEEP_KUBEFLOW_PVC
  value: {{ include "kubesweep.storageClaim" . | quote }}
{{- end }}
{{- end }}

{{- define "kubesweep.collectorUrl" -}}
{{- if .Values.collector.externalUrl }}
{{- .Values.collector.externalUrl }}
{{- else }}
{{- printf "http://%s-collector.%s.svc:%v" (include "kubesweep.fullname" .) .Release.Namespace .Values.collector.service.port }}
{{- end }}
{{- end }}

{{- define "kubesweep.apiUrl" -}}
{{- printf "http://%s-api.%s.svc:%v" (include "kubesweep.fullname" .) .Release.Namespace .Values.api.service.port }}
{{- end }}

{{- define "kubesweep.storageClaim" -}}
{{- default (printf "%s-storage" (include "kubesweep.fullname" .)) .Values.storage.persistence.existingClaim }}
{{- end }}

{{/* ---------------------------------------------------------------- RBAC */}}

{{- define "kubesweep.dispatcherServiceAccount" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-dispatcher" (include "kubesweep.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespaces the dispatcher manages, as a JSON list (default: the release namespace). */}}
{{- define "kubesweep.namespaces" -}}
{{- $list := .Values.rbac.namespaces | default (list .Release.Namespace) }}
{{- toJson (uniq $list) }}
{{- end }}

{{/* Exactly what the kubeflow platform calls (platforms/kubeflow/platform.py, cluster.py):
jobs: create (launch), get (adopt on 409, observe), list/watch (watcher), delete (cancel),
deletecollection (experiment cleanup); Secrets: create (trial token, Azure key), delete and
deletecollection (cancel and cleanup) - never get/list, so it cannot read other Secrets;
pods get/list (pending reasons) and pods/log get (trial logs). */}}
{{- define "kubesweep.dispatcherRules" -}}
- apiGroups: ["kubeflow.org"]
  resources: ["tfjobs", "pytorchjobs"]
  verbs: ["create", "get", "list", "watch", "delete", "deletecollection"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create", "delete", "deletecollection"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
{{- end }}

{{/* ---------------------------------------------------------------- pods */}}

{{- define "kubesweep.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* nodeSelector, tolerations, affinity of one component's values. */}}
{{- define "kubesweep.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Liveness/readiness of the services without HTTP (tuner, worker, watch): the instance's
Redis heartbeat key ks:heartbeat:<service>:<hostname>:<pid> (kubesweep.heartbeat) exists. The
key only appears once the service is ready and expires 15 s after its last beat. */}}
{{- define "kubesweep.heartbeatProbes" -}}
{{- $cmd := list "python" "-c" "import os, socket, sys, redis; r = redis.Redis.from_url(os.environ['KUBESWEEP_REDIS_URL'], socket_timeout=5); sys.exit(0 if next(r.scan_iter(match='ks:heartbeat:%s:%s:*' % (sys.argv[1], socket.gethostname()), count=1000), None) else 1)" .service }}
startupProbe:
  exec:
    command: {{ toJson $cmd }}
  periodSeconds: 5
  timeoutSeconds: 10
  failureThreshold: 60
readinessProbe:
  exec:
    command: {{ toJson $cmd }}
  periodSeconds: 15
  timeoutSeconds: 10
  failureThreshold: 2
livenessProbe:
  exec:
    command: {{ toJson $cmd }}
  periodSeconds: 30
  timeoutSeconds: 10
  failureThreshold: 4
{{- end }}

{{- define "kubesweep.httpProbes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 2
  failureThreshold: 60
readinessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 10
  timeoutSeconds: 5
livenessProbe:
  httpGet: {path: /healthz, port: http}
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
{{- end }}

{{/* "true" when the component's HPA is rendered: enabled AND the cluster serves autoscaling/v2
(1.23+); then the Deployment leaves `replicas` to the HPA. */}}
{{- define "kubesweep.hpaActive" -}}
{{- if and .values.autoscaling.enabled (.root.Capabilities.APIVersions.Has "autoscaling/v2") }}true{{ end }}
{{- end }}

{{/* A component's Deployment: (dict "root" $ "component" "api" "values" .Values.api
"containers" <yaml> "volumes" <yaml> "dispatcher" bool "podSecurityContext" <map>
"checksum" bool). Only the dispatcher's pods mount a Kubernetes token. */}}
{{- define "kubesweep.deployment" -}}
{{- $root := .root }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "kubesweep.fullname" $root }}-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kubesweep.componentLabels" . | nindent 4 }}
spec:
  {{- if not (include "kubesweep.hpaActive" .) }}
  replicas: {{ .values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "kubesweep.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "kubesweep.selectorLabels" . | nindent 8 }}
      annotations:
        # Roll the pods when a value-supplied secret changes (generated ones never change).
        checksum/secret: {{ toJson (list $root.Values.auth $root.Values.redis.external $root.Values.flower.basicAuth) | sha256sum }}
        {{- with .values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      {{- if .dispatcher }}
      serviceAccountName: {{ include "kubesweep.dispatcherServiceAccount" $root }}
      automountServiceAccountToken: true
      {{- else }}
      automountServiceAccountToken: false
      {{- end }}
      enableServiceLinks: false
      {{- with .values.terminationGracePeriodSeconds }}
      terminationGracePeriodSeconds: {{ . }}
      {{- end }}
      {{- with (include "kubesweep.imagePullSecrets" $root) }}{{ . | nindent 6 }}{{ end }}
      securityContext:
        {{- toYaml (.podSecurityContext | default $root.Values.podSecurityContext) | nindent 8 }}
      containers:
        {{- .containers | nindent 8 }}
      volumes:
        - name: tmp
          emptyDir: {}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- include "kubesweep.scheduling" .values | nindent 6 }}
{{- end }}

{{/* The storage volume of api and worker. */}}
{{- define "kubesweep.storageVolume" -}}
- name: storage
{{- if .Values.storage.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ include "kubesweep.storageClaim" . }}
{{- else }}
  emptyDir: {}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- HPA and PDB */}}

{{- define "kubesweep.hpa" -}}
{{- if include "kubesweep.hpaActive" . }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "kubesweep.fullname" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kubesweep.componentLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "kubesweep.fullname" .root }}-{{ .component }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end }}

{{/* policy/v1 from 1.21; policy/v1beta1 (removed in 1.25) only for older servers. */}}
{{- define "kubesweep.pdb" -}}
{{- if .values.pdb.enabled }}
---
apiVersion: {{ if .root.Capabilities.APIVersions.Has "policy/v1" }}policy/v1{{ else }}policy/v1beta1{{ end }}
kind: PodDisruptionBudget
metadata:
  name: {{ include "kubesweep.fullname" .root }}-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kubesweep.componentLabels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "kubesweep.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
