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

{{/* The users entry name the API server looks up in the kubeconfig of its
AdmissionConfiguration for this webhook: the Service's DNS name, with the port
when it is not 443. */}}
{{- define "portier.apiserverKubeconfigUser" -}}
{{- include "portier.serviceDNSName" . }}{{ if ne (int .Values.service.port) 443 }}:{{ .Values.service.port }}{{ end }}
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

The binary has two listeners:
- the webhook listener (HTTPS, --addr, container port "webhook"): POST /validate
  and POST /mutate only, everything else is 404 there. With mtls.enabled it
  requires a client certificate (--client-ca), so nothing but the API server
  can use it;
- the operations listener (plain HTTP, --metrics-addr, container port
  "metrics"): GET /metrics, /healthz, /readyz, for the kubelet's probes and
  Prometheus, which have no client certificate.
The Deployment's ports, args and probes, the Service, the NetworkPolicy and the
ServiceMonitor all take their wiring from the helpers below.
====================================================================== */}}

{{/* Paths the binary reads; the chart mounts its volumes at these paths. */}}
{{- define "portier.policiesDir" -}}/etc/portier/policies{{- end }}
{{- define "portier.tlsDir" -}}/etc/portier/tls{{- end }}
{{- define "portier.clientCADir" -}}/etc/portier/client-ca{{- end }}

{{/* The ConfigMap holding mtls.clientCA (when given inline). */}}
{{- define "portier.clientCAConfigMapName" -}}
{{- printf "%s-client-ca" (include "portier.fullname" .) }}
{{- end }}

{{/*
File mode of the TLS Secret volume: 0440 (decimal 288). The binary refuses a
private key every user can read (the Secret volume default is 0644); the pod's
fsGroup owns the files, so the non-root process reads them through its group.
*/}}
{{- define "portier.tlsDefaultMode" -}}288{{- end }}

{{/*
--request-timeout: a review still unanswered then gets HTTP 503 from portier,
500 ms before the API server gives up on webhook.timeoutSeconds (so the API
server sees a clear error, and the failure policy applies, not a timeout).
*/}}
{{- define "portier.requestTimeout" -}}
{{- printf "%dms" (sub (mul (int .Values.webhook.timeoutSeconds) 1000) 500) }}
{{- end }}

{{/* Seconds the binary may need to stop once SIGTERM arrives, after the
preStop sleep: --shutdown-delay, then up to 10 s to finish reviews in flight
(the binary's fixed drain timeout). */}}
{{- define "portier.drainSeconds" -}}10{{- end }}

{{/* Checks across values that values.schema.json cannot express. */}}
{{- define "portier.validateValues" -}}
{{- if eq (int .Values.ports.webhook) (int .Values.ports.metrics) }}
{{- fail "ports.webhook and ports.metrics must differ: they are two listeners" }}
{{- end }}
{{- $needed := add (int .Values.preStopSleepSeconds) (int .Values.shutdownDelaySeconds) (int (include "portier.drainSeconds" .)) }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must cover preStopSleepSeconds (%d) + shutdownDelaySeconds (%d) + %s s to drain reviews in flight = %d, or the kubelet kills portier mid-review" (int .Values.terminationGracePeriodSeconds) (int .Values.preStopSleepSeconds) (int .Values.shutdownDelaySeconds) (include "portier.drainSeconds" .) (int $needed)) }}
{{- end }}
{{- /* extraVolumes / extraVolumeMounts: unique names, none of the chart's own
volumes, mounts of extraVolumes only, and never at, under or above the chart's
own mount paths (one at the same path would replace the policies or the key; a
mount point inside a read-only volume cannot be created). */}}
{{- $chartVolumes := list "policies" "tls" "client-ca" }}
{{- $chartDirs := list (include "portier.policiesDir" .) (include "portier.tlsDir" .) (include "portier.clientCADir" .) }}
{{- $volumes := dict }}
{{- range $i, $v := .Values.extraVolumes }}
{{- if has $v.name $chartVolumes }}
{{- fail (printf "extraVolumes[%d]: the name %q is the chart's own volume; choose another" $i $v.name) }}
{{- end }}
{{- if hasKey $volumes $v.name }}
{{- fail (printf "extraVolumes[%d]: a volume named %q is already in extraVolumes" $i $v.name) }}
{{- end }}
{{- $_ := set $volumes $v.name true }}
{{- end }}
{{- $paths := dict }}
{{- range $i, $m := .Values.extraVolumeMounts }}
{{- if not (hasKey $volumes $m.name) }}
{{- fail (printf "extraVolumeMounts[%d]: no volume named %q in extraVolumes" $i $m.name) }}
{{- end }}
{{- $path := trimSuffix "/" $m.mountPath | default "/" }}
{{- range $chartDirs }}
{{- if or (eq $path . "/") (hasPrefix (printf "%s/" .) $path) (hasPrefix (printf "%s/" $path) .) }}
{{- fail (printf "extraVolumeMounts[%d]: mountPath %s is at, under or above %s, the chart's own mount" $i $m.mountPath .) }}
{{- end }}
{{- end }}
{{- if hasKey $paths $path }}
{{- fail (printf "extraVolumeMounts[%d]: mountPath %s is already used by another extra mount" $i $m.mountPath) }}
{{- end }}
{{- $_ := set $paths $path true }}
{{- end }}
{{- end }}

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
- {{ printf "0.0.0.0:%d" (int .Values.ports.webhook) | quote }}
- --metrics-addr
- {{ printf "0.0.0.0:%d" (int .Values.ports.metrics) | quote }}
- --log-format
- {{ .Values.logFormat }}
- --max-in-flight
- {{ .Values.maxInFlight | int | toString | quote }}
- --request-timeout
- {{ include "portier.requestTimeout" . }}
- --shutdown-delay
- {{ printf "%ds" (int .Values.shutdownDelaySeconds) }}
{{- if .Values.mtls.enabled }}
- --client-ca
- {{ include "portier.clientCADir" . }}/ca.crt
{{- range .Values.mtls.allowedSubjects }}
- --client-cn-allow
- {{ . | quote }}
{{- end }}
{{- end }}
{{- with .Values.audit.interval }}
- --audit-interval
- {{ . | quote }}
{{- if $.Values.audit.policyReports }}
- --audit-report
- policyreport
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/* The container's ports. */}}
{{- define "portier.containerPorts" -}}
- name: webhook
  containerPort: {{ .Values.ports.webhook }}
  protocol: TCP
- name: metrics
  containerPort: {{ .Values.ports.metrics }}
  protocol: TCP
{{- end }}

{{/*
The Service's ports: service.port (443) -> the webhook port, for the API
server; and the metrics port, because a ServiceMonitor finds its targets
through a named Service port. The metrics port on the Service opens nothing
new: the pods' IPs already serve it, and the NetworkPolicy (metricsFrom)
governs who reaches it either way.
*/}}
{{- define "portier.servicePorts" -}}
- name: webhook
  port: {{ .Values.service.port }}
  targetPort: webhook
  protocol: TCP
- name: metrics
  port: {{ .Values.ports.metrics }}
  targetPort: metrics
  protocol: TCP
{{- end }}

{{/* Where the kubelet probes: the operations listener, plain HTTP (the
kubelet has no client certificate, and needs none there). */}}
{{- define "portier.probeHttpGet" -}}
port: metrics
scheme: HTTP
{{- end }}

{{/* The ServiceMonitor endpoint: the Service's metrics port, plain HTTP. */}}
{{- define "portier.metricsEndpoint" -}}
port: metrics
path: /metrics
scheme: http
{{- end }}

{{/* The NetworkPolicy's ingress rules: the webhook port from
networkPolicy.webhookFrom, the metrics port from networkPolicy.metricsFrom
(an empty list: from anywhere). Nothing else reaches the pods. */}}
{{- define "portier.networkPolicyIngress" -}}
- ports:
    - port: webhook
      protocol: TCP
  {{- with .Values.networkPolicy.webhookFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - port: metrics
      protocol: TCP
  {{- with .Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
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

{{/*
The object kinds portier judges: pods and every pod controller; and Namespace
writes, which pod-security with level: namespace judges as Pod Security
admission does (invalid PSA labels refused, a tightened enforce level warned
about with the existing pods that violate it). The namespaceSelector applies
to a Namespace's own labels, so kube-system and the release namespace are
never routed here; without a level: namespace policy every Namespace write is
allowed as it is.
*/}}
{{- define "portier.validatingRules" -}}
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["pods", "pods/ephemeralcontainers", "pods/resize", "replicationcontrollers", "podtemplates"]
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
- apiGroups: [""]
  apiVersions: ["v1"]
  operations: ["CREATE", "UPDATE"]
  resources: ["namespaces"]
  scope: Cluster
{{- with .Values.webhook.extraRules }}
{{ toYaml . }}
{{- end }}
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

{{/*
The PSA-compatible preset (presets/psa-compatible.yaml) with the values'
mode, defaults and exemptions; called with .Values.psaCompatible.
*/}}
{{- define "portier.psaCompatiblePolicy" -}}
apiVersion: portier.dev/v1
kind: Policy
metadata:
  name: pod-security
spec:
  check: pod-security
  mode: {{ .mode | default "audit" }}
  params:
    level: namespace
    defaults:
      {{- toYaml (.defaults | default dict) | nindent 6 }}
    exemptions:
      usernames: {{ .exemptions.usernames | default list | toJson }}
      runtimeClasses: {{ .exemptions.runtimeClasses | default list | toJson }}
      namespaces: {{ .exemptions.namespaces | default list | toJson }}
{{- end }}
