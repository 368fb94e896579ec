{{/* Names and labels. */}}
{{- define "hooknorm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hooknorm.fullname" -}}
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

{{- define "hooknorm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hooknorm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hooknorm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "hooknorm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hooknorm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hooknorm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The replica count, after the mode's rules: embedded keeps one SQLite file on one volume, so a
second replica could never share it.
*/}}
{{- define "hooknorm.replicas" -}}
{{- if eq .Values.mode "embedded" }}
{{- if and (not (kindIs "invalid" .Values.replicaCount)) (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount %v: embedded mode runs exactly 1 replica (one SQLite store on one volume); for more, set mode: nats (NATS JetStream)" .Values.replicaCount) }}
{{- end }}
{{- if .Values.autoscaling.enabled }}
{{- fail "autoscaling.enabled: embedded mode runs exactly 1 replica; for autoscaling, set mode: nats (NATS JetStream)" }}
{{- end }}
{{- 1 }}
{{- else }}
{{- if kindIs "invalid" .Values.replicaCount }}3{{ else }}{{ int .Values.replicaCount }}{{ end }}
{{- end }}
{{- end }}

{{/* Where things live in the container. */}}
{{- define "hooknorm.configDir" -}}/etc/hooknorm/config{{- end }}
{{- define "hooknorm.secretsDir" -}}/etc/hooknorm/secrets{{- end }}
{{- define "hooknorm.tlsDir" -}}/etc/hooknorm/tls{{- end }}
{{- define "hooknorm.dataDir" -}}/var/lib/hooknorm{{- end }}

{{/*
The shutdown budget: the kubelet's SIGKILL must come after the drain and the grace hooknorm gives
in-flight requests, or it cuts them off.
*/}}
{{- define "hooknorm.terminationGracePeriodSeconds" -}}
{{- $server := .Values.config.server }}
{{- $needed := add (int $server.drain_seconds) (int $server.shutdown_grace_seconds) }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $needed 10 }}
{{- else if le (int .Values.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "terminationGracePeriodSeconds %v must exceed config.server.drain_seconds + shutdown_grace_seconds (%d)" .Values.terminationGracePeriodSeconds $needed) }}
{{- else }}
{{- int .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
One TOML value: strings as JSON strings (a subset of TOML's basic strings), whole numbers as
integers (Helm reads every number as a float, which hooknorm's integer keys refuse), lists as
arrays and maps as inline tables.
*/}}
{{- define "hooknorm.toml.value" -}}
{{- $v := . }}
{{- if kindIs "string" $v }}{{ toJson $v }}
{{- else if kindIs "bool" $v }}{{ $v }}
{{- else if or (kindIs "float64" $v) (kindIs "int" $v) (kindIs "int64" $v) }}
{{- if eq (float64 $v) (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else if kindIs "slice" $v }}[{{ range $i, $e := $v }}{{ if $i }}, {{ end }}{{ include "hooknorm.toml.value" $e }}{{ end }}]
{{- else if kindIs "map" $v }}{ {{- range $i, $k := keys $v | sortAlpha }}{{ if $i }},{{ end }} {{ $k }} = {{ include "hooknorm.toml.value" (get $v $k) }}{{ end }} }
{{- else }}{{ fail (printf "cannot write %v into the hooknorm config" $v) }}
{{- end }}
{{- end }}

{{/* A map's keys as `key = value` lines, sorted; null values are left out (hooknorm's default). */}}
{{- define "hooknorm.toml.keys" -}}
{{- range $k := keys . | sortAlpha }}
{{- if not (kindIs "invalid" (get $ $k)) }}
{{ $k }} = {{ include "hooknorm.toml.value" (get $ $k) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A source's scheme: as written, else its provider's default (README, verification schemes). */}}
{{- define "hooknorm.sourceScheme" -}}
{{- $verification := default dict .verification }}
{{- if $verification.scheme }}{{ $verification.scheme }}
{{- else if eq .provider "gigs" }}standard_webhooks
{{- else }}query_token
{{- end }}
{{- end }}

{{/* The verification key a scheme's secrets go to; empty for schemes without secrets. */}}
{{- define "hooknorm.schemeSecretKey" -}}
{{- if eq . "standard_webhooks" }}secrets
{{- else if or (eq . "query_token") (eq . "header_token") }}tokens
{{- else if eq . "basic_auth" }}password
{{- end }}
{{- end }}

{{/*
Every secret file the pod mounts, as a YAML list of {secret, key, path, value}: which Secret and
key it comes from, its path under the secrets directory, and (for the chart's own Secret) the
value. The one place that decides names and paths: the config, the volume and the chart's
Secret all read it.
*/}}
{{- define "hooknorm.secretFiles" -}}
{{- $chartSecret := include "hooknorm.fullname" . }}
{{- $files := list }}
{{- range $source := .Values.webhooks.sources }}
{{- $field := include "hooknorm.schemeSecretKey" (include "hooknorm.sourceScheme" $source) }}
{{- $keys := default list $source.secretKeys }}
{{- $values := default list $source.secretValues }}
{{- if and $keys $values }}
{{- fail (printf "webhooks.sources[%s]: give secretKeys (of webhooks.existingSecret) or secretValues, not both" $source.name) }}
{{- end }}
{{- if and $keys (not $.Values.webhooks.existingSecret) }}
{{- fail (printf "webhooks.sources[%s].secretKeys: name the Secret holding them in webhooks.existingSecret" $source.name) }}
{{- end }}
{{- $count := len (concat $keys $values) }}
{{- if and $field (eq $count 0) }}
{{- fail (printf "webhooks.sources[%s]: its scheme needs %s: give secretKeys (of webhooks.existingSecret) or secretValues" $source.name $field) }}
{{- end }}
{{- if and (not $field) (gt $count 0) }}
{{- fail (printf "webhooks.sources[%s]: its scheme takes no secrets" $source.name) }}
{{- end }}
{{- if and (eq $field "password") (gt $count 1) }}
{{- fail (printf "webhooks.sources[%s]: basic_auth takes one password" $source.name) }}
{{- end }}
{{- range $i, $key := $keys }}
{{- $files = append $files (dict "secret" $.Values.webhooks.existingSecret "key" $key "path" (printf "sources/%s/%d" $source.name $i) "value" "") }}
{{- end }}
{{- range $i, $value := $values }}
{{- $files = append $files (dict "secret" $chartSecret "key" (printf "source-%s-%d" $source.name $i) "path" (printf "sources/%s/%d" $source.name $i) "value" $value) }}
{{- end }}
{{- end }}
{{- if not .Values.apiKeys.none }}
{{- range $i, $entry := .Values.apiKeys.keys }}
{{- $given := 0 }}
{{- range $field := list "key_sha256" "secretKey" "secretValue" }}
{{- if get $entry $field }}{{ $given = add1 $given }}{{ end }}
{{- end }}
{{- if gt $given 1 }}
{{- fail (printf "apiKeys.keys[%s]: give one of key_sha256, secretKey and secretValue" $entry.name) }}
{{- end }}
{{- if and $entry.secretKey (not $.Values.apiKeys.existingSecret) }}
{{- fail (printf "apiKeys.keys[%s].secretKey: name the Secret holding it in apiKeys.existingSecret" $entry.name) }}
{{- end }}
{{- if $entry.secretKey }}
{{- $files = append $files (dict "secret" $.Values.apiKeys.existingSecret "key" $entry.secretKey "path" (printf "api-keys/%d" $i) "value" "") }}
{{- else if $entry.secretValue }}
{{- $files = append $files (dict "secret" $chartSecret "key" (printf "api-key-%d" $i) "path" (printf "api-keys/%d" $i) "value" $entry.secretValue) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (eq .Values.mode "nats") (ne .Values.nats.auth.type "none") }}
{{- $auth := .Values.nats.auth }}
{{- if and $auth.secretKey $auth.secretValue }}
{{- fail "nats.auth: give secretKey (of nats.auth.existingSecret) or secretValue, not both" }}
{{- end }}
{{- if $auth.secretKey }}
{{- if not $auth.existingSecret }}
{{- fail "nats.auth.secretKey: name the Secret holding it in nats.auth.existingSecret" }}
{{- end }}
{{- $files = append $files (dict "secret" $auth.existingSecret "key" $auth.secretKey "path" (printf "nats/%s" $auth.type) "value" "") }}
{{- else if $auth.secretValue }}
{{- $files = append $files (dict "secret" $chartSecret "key" (printf "nats-%s" $auth.type) "path" (printf "nats/%s" $auth.type) "value" $auth.secretValue) }}
{{- else }}
{{- fail (printf "nats.auth.type %s needs secretKey (of nats.auth.existingSecret) or secretValue" $auth.type) }}
{{- end }}
{{- end }}
{{- toYaml (dict "files" $files) }}
{{- end }}

{{/* The chart's own Secret's data (trial values only), as a YAML map; empty when there are none. */}}
{{- define "hooknorm.chartSecretData" -}}
{{- $data := dict }}
{{- range (include "hooknorm.secretFiles" . | fromYaml).files }}
{{- if .value }}{{ $_ := set $data .key .value }}{{ end }}
{{- end }}
{{- if $data }}{{ toYaml $data }}{{ end }}
{{- end }}
