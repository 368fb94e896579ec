{{/* The pod, the same in both modes but for where the store lives. */}}
{{- define "hooknorm.podTemplate" -}}
{{- $files := (include "hooknorm.secretFiles" . | fromYaml).files -}}
metadata:
  labels:
    {{- include "hooknorm.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # A change of config or of the chart's own Secret rolls the pods: hooknorm reads both once.
    checksum/config: {{ include "hooknorm.config" . | sha256sum }}
    checksum/secret: {{ include "hooknorm.chartSecretData" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "hooknorm.serviceAccountName" . }}
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ include "hooknorm.terminationGracePeriodSeconds" . }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    fsGroup: 65532
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: hooknorm
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args: ["serve", "--config", "{{ include "hooknorm.configDir" . }}/hooknorm.toml"]
      ports:
        - name: grpc
          containerPort: {{ .Values.ports.grpc }}
          protocol: TCP
        - name: http
          containerPort: {{ .Values.ports.http }}
          protocol: TCP
        - name: ops
          containerPort: {{ .Values.ports.ops }}
          protocol: TCP
      {{- $env := include "hooknorm.telemetryEnv" . | fromYamlArray }}
      {{- with concat $env .Values.extraEnv }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: ops
        periodSeconds: 10
        failureThreshold: 3
      readinessProbe:
        httpGet:
          path: /readyz
          port: ops
        periodSeconds: 5
        failureThreshold: 1
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        privileged: false
        capabilities:
          drop: [ALL]
      volumeMounts:
        - name: config
          mountPath: {{ include "hooknorm.configDir" . }}
          readOnly: true
        - name: data
          mountPath: {{ include "hooknorm.dataDir" . }}
        - name: tmp
          mountPath: /tmp
        {{- if $files }}
        - name: secrets
          mountPath: {{ include "hooknorm.secretsDir" . }}
          readOnly: true
        {{- end }}
        {{- range $listener := list "grpc" "http" }}
        {{- if (get $.Values.tls $listener).existingSecret }}
        - name: tls-{{ $listener }}
          mountPath: {{ include "hooknorm.tlsDir" $ }}/{{ $listener }}
          readOnly: true
        {{- end }}
        {{- end }}
        {{- if and (eq .Values.mode "nats") .Values.nats.tls.existingSecret }}
        - name: tls-nats
          mountPath: {{ include "hooknorm.tlsDir" . }}/nats
          readOnly: true
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "hooknorm.fullname" . }}
    # The root filesystem is read-only; nothing is meant to write here, but a library's
    # temporary file must not crash the server.
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if eq .Values.mode "nats" }}
    # The local index, rebuilt from the stream when the pod starts afresh.
    - name: data
      emptyDir: {}
    {{- end }}
    {{- if $files }}
    - name: secrets
      projected:
        defaultMode: 0440
        sources:
          {{- range $files }}
          - secret:
              name: {{ .secret }}
              items:
                - key: {{ .key | quote }}
                  path: {{ .path }}
          {{- end }}
    {{- end }}
    {{- range $listener := list "grpc" "http" }}
    {{- with (get $.Values.tls $listener).existingSecret }}
    - name: tls-{{ $listener }}
      secret:
        secretName: {{ . }}
        defaultMode: 0440
    {{- end }}
    {{- end }}
    {{- if and (eq .Values.mode "nats") .Values.nats.tls.existingSecret }}
    - name: tls-nats
      secret:
        secretName: {{ .Values.nats.tls.existingSecret }}
        defaultMode: 0440
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $spread := .Values.topologySpreadConstraints }}
  {{- if and (not $spread) (eq .Values.mode "nats") }}
  {{- /* Replicas on one node would all go with it. */}}
  {{- $spread = list (dict "maxSkew" 1 "topologyKey" "kubernetes.io/hostname" "whenUnsatisfiable" "ScheduleAnyway" "labelSelector" (dict "matchLabels" (include "hooknorm.selectorLabels" . | fromYaml))) }}
  {{- end }}
  {{- with $spread }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The OTEL_* variables hooknorm's telemetry reads, as a YAML list; unset values are left out. */}}
{{- define "hooknorm.telemetryEnv" -}}
{{- $t := .Values.telemetry }}
{{- $env := list }}
{{- range $pair := list (list "OTEL_EXPORTER_OTLP_ENDPOINT" $t.otlpEndpoint) (list "OTEL_SERVICE_NAME" $t.serviceName) (list "OTEL_TRACES_SAMPLER" $t.tracesSampler) (list "OTEL_TRACES_SAMPLER_ARG" $t.tracesSamplerArg) }}
{{- if index $pair 1 }}
{{- $env = append $env (dict "name" (index $pair 0) "value" (toString (index $pair 1))) }}
{{- end }}
{{- end }}
{{- with $t.resourceAttributes }}
{{- $attributes := list }}
{{- range $k := keys . | sortAlpha }}{{ $attributes = append $attributes (printf "%s=%v" $k (get $t.resourceAttributes $k)) }}{{ end }}
{{- $env = append $env (dict "name" "OTEL_RESOURCE_ATTRIBUTES" "value" (join "," $attributes)) }}
{{- end }}
{{- toYaml $env }}
{{- end }}
