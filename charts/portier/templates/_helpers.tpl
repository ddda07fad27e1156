{{/*
Expand the name of the chart.
*/}}
{{- define "portier.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "portier.fullname" -}}
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
Create chart name and version as used by the chart label.
*/}}
{{- define "portier.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "portier.labels" -}}
helm.sh/chart: {{ include "portier.chart" . }}
{{ include "portier.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portier
{{- end }}

{{/*
Selector labels
*/}}
{{- define "portier.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portier.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "portier.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portier.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container image: repository:tag, or repository@digest when a digest is set.
*/}}
{{- define "portier.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Names of the objects that other objects refer to. */}}
{{- define "portier.tlsSecretName" -}}
{{- printf "%s-tls" (include "portier.fullname" .) }}
{{- end }}
{{- define "portier.policiesConfigMapName" -}}
{{- printf "%s-policies" (include "portier.fullname" .) }}
{{- end }}
{{- define "portier.certificateName" -}}
{{- printf "%s-serving" (include "portier.fullname" .) }}
{{- end }}

{{/* The in-cluster DNS name the API server uses to reach the webhook. */}}
{{- define "portier.serviceDNSName" -}}
{{- printf "%s.%s.svc" (include "portier.fullname" .) .Release.Namespace }}
{{- end }}

{{/*
Effective minimum number of replicas (replicaCount, or the HPA's minimum).
*/}}
{{- define "portier.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}
{{- .Values.autoscaling.minReplicas }}
{{- else }}
{{- .Values.replicaCount }}
{{- end }}
{{- end }}

{{/* ======================================================================
Ports, probes and scraping, kept in ONE place.

Today the binary serves everything over HTTPS on one port: the webhook
(/validate, /mutate), the probes (/healthz, /readyz) and /metrics.
When metrics and health move to a plain HTTP --metrics-addr (planned), change
only the helpers below (and add a metrics port value): the Deployment's ports,
args and probes, the Service, the NetworkPolicy and the ServiceMonitor all take
their wiring from here.
====================================================================== */}}

{{/* Paths the binary reads; the chart mounts its volumes at these paths. */}}
{{- define "portier.policiesDir" -}}/etc/portier/policies{{- end }}
{{- define "portier.tlsDir" -}}/etc/portier/tls{{- end }}

{{/* The server's command-line arguments (after the binary name). */}}
{{- define "portier.args" -}}
- serve
- --policies
- {{ include "portier.policiesDir" . }}
- --tls-cert
- {{ include "portier.tlsDir" . }}/tls.crt
- --tls-key
- {{ include "portier.tlsDir" . }}/tls.key
- --addr
- {{ printf "0.0.0.0:%d" (int .Values.containerPort) | quote }}
- --log-format
- {{ .Values.logFormat }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The container's ports. */}}
{{- define "portier.containerPorts" -}}
- name: https
  containerPort: {{ .Values.containerPort }}
  protocol: TCP
{{- end }}

{{/* The Service's ports: 443 (service.port) -> the webhook port. */}}
{{- define "portier.servicePorts" -}}
- name: https
  port: {{ .Values.service.port }}
  targetPort: https
  protocol: TCP
{{- end }}

{{/* Where the kubelet probes: the container port name and scheme. */}}
{{- define "portier.probeHttpGet" -}}
port: https
scheme: HTTPS
{{- end }}

{{/* The ServiceMonitor endpoint (port name, scheme and TLS settings). */}}
{{- define "portier.metricsEndpoint" -}}
port: https
path: /metrics
scheme: https
tlsConfig:
  serverName: {{ include "portier.serviceDNSName" . }}
  ca:
    secret:
      name: {{ include "portier.tlsSecretName" . }}
      key: ca.crt
{{- end }}

{{/* The container ports the NetworkPolicy opens (the webhook port only). */}}
{{- define "portier.networkPolicyPorts" -}}
- port: https
  protocol: TCP
{{- end }}

{{/* ======================================================================
Webhook configurations
====================================================================== */}}

{{/*
namespaceSelector: never send objects from kube-system, kube-node-lease,
kube-public or portier's own namespace (the cluster and portier can always
recover), nor from webhook.excludeNamespaces. Every namespace carries the
immutable kubernetes.io/metadata.name label, set by the API server.
*/}}
{{- define "portier.namespaceSelector" -}}
{{- $always := list "kube-system" "kube-node-lease" "kube-public" .Release.Namespace -}}
{{- $excluded := concat $always .Values.webhook.excludeNamespaces | uniq -}}
{{- $exclude := dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" $excluded -}}
{{- $extra := .Values.webhook.namespaceSelector.matchExpressions | default list -}}
{{- $selector := dict "matchExpressions" (prepend $extra $exclude) -}}
{{- with .Values.webhook.namespaceSelector.matchLabels }}
{{- $_ := set $selector "matchLabels" . }}
{{- end }}
{{- toYaml $selector }}
{{- end }}

{{/*
matchConditions: skip requests from kubelets (users system:node:*). A kubelet
only creates mirror pods of its static pods (NodeRestriction allows nothing
else), so after a full cluster restart the control plane's static pods come
back even while portier is down.
Also skip objects that are being deleted (their finalizers are being removed):
judging them could only leave them stuck in Terminating.
*/}}
{{- define "portier.matchConditions" -}}
- name: exclude-kubelet-requests
  expression: "!request.userInfo.username.startsWith('system:node:')"
- name: exclude-objects-being-deleted
  expression: "object == null || !has(object.metadata.deletionTimestamp)"
{{- with .Values.webhook.matchConditions }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The object kinds portier judges: pods and every pod controller. */}}
{{- define "portier.validatingRules" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods", "pods/ephemeralcontainers", "replicationcontrollers"]
  scope: Namespaced
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
  scope: Namespaced
- apiGroups: ["batch"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["jobs", "cronjobs"]
  scope: Namespaced
{{- end }}

{{/*
Mutation: pods only on CREATE (a pod's spec is immutable afterwards), pod
controllers on CREATE and UPDATE (their pod template can change).
*/}}
{{- define "portier.mutatingRules" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE"]
  resources: ["pods"]
  scope: Namespaced
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["replicationcontrollers"]
  scope: Namespaced
- apiGroups: ["apps"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
  scope: Namespaced
- apiGroups: ["batch"]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["jobs", "cronjobs"]
  scope: Namespaced
{{- end }}

{{/* Settings both webhooks share. */}}
{{- define "portier.webhookCommon" -}}
admissionReviewVersions: ["v1"]
sideEffects: None
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
matchPolicy: Equivalent
namespaceSelector:
  {{- include "portier.namespaceSelector" . | nindent 2 }}
{{- with .Values.webhook.objectSelector }}
objectSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
matchConditions:
  {{- include "portier.matchConditions" . | nindent 2 }}
{{- end }}

{{/* clientConfig for a webhook path; $ctx.caBundle is "" with cert-manager. */}}
{{- define "portier.clientConfig" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 }}
{{- $caBundle := index . 2 -}}
service:
  name: {{ include "portier.fullname" $root }}
  namespace: {{ $root.Release.Namespace }}
  path: {{ $path }}
  port: {{ $root.Values.service.port }}
{{- if $caBundle }}
caBundle: {{ $caBundle }}
{{- end }}
{{- end }}

{{/* Annotation that makes cert-manager's cainjector fill in the caBundle. */}}
{{- define "portier.injectCAAnnotation" -}}
{{- if .Values.certManager.enabled -}}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "portier.certificateName" .) }}
{{- end }}
{{- end }}
