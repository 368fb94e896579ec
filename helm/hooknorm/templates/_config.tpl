{{/*
hooknorm.toml, from values. The chart owns the listen addresses (every interface: the kubelet
probes the pod's IP), the store's backend and paths, and every secret, which is only ever a
`{ file = ... }` reference to a mounted Secret key, never a value.
*/}}
{{- define "hooknorm.config" -}}
{{- $secretsDir := include "hooknorm.secretsDir" . }}
{{- $tlsDir := include "hooknorm.tlsDir" . }}
{{- $files := (include "hooknorm.secretFiles" . | fromYaml).files }}
{{- /* Each secret file's path (under the secrets directory) -> its TOML reference, { file = ... }. */}}
{{- $secretAt := dict }}
{{- range $files }}{{ $_ := set $secretAt .path (dict "file" (printf "%s/%s" $secretsDir .path)) }}{{ end }}
# Rendered by the hooknorm Helm chart from its values; secrets are files mounted from Secrets.
{{- if .Values.apiKeys.none }}
auth = "none"
{{- end }}

[server]
grpc_listen = "0.0.0.0:{{ .Values.ports.grpc }}"
http_listen = "0.0.0.0:{{ .Values.ports.http }}"
ops_listen = "0.0.0.0:{{ .Values.ports.ops }}"
{{- include "hooknorm.toml.keys" .Values.config.server }}
{{- range $section := list "http" "ops" "grpc" "limits" }}
{{- with get $.Values.config $section }}

[{{ $section }}]
{{- include "hooknorm.toml.keys" . }}
{{- end }}
{{- end }}

[store]
backend = {{ if eq .Values.mode "nats" }}"nats"{{ else }}"sqlite"{{ end }}
path = {{ include "hooknorm.dataDir" . | toJson }}
{{- include "hooknorm.toml.keys" .Values.config.store }}
{{- if eq .Values.mode "nats" }}

[store.nats]
{{- include "hooknorm.toml.keys" .Values.nats.config }}
{{- $auth := .Values.nats.auth }}
{{- if eq $auth.type "user_password" }}
{{- if not $auth.user }}{{ fail "nats.auth.type user_password needs nats.auth.user" }}{{ end }}
user = {{ toJson $auth.user }}
password = {{ include "hooknorm.toml.value" (get $secretAt "nats/user_password") }}
{{- else if ne $auth.type "none" }}
{{ $auth.type }} = {{ include "hooknorm.toml.value" (get $secretAt (printf "nats/%s" $auth.type)) }}
{{- end }}
{{- with .Values.nats.tls }}
{{- if or .existingSecret .required }}

[store.nats.tls]
{{- if .existingSecret }}
ca_file = {{ printf "%s/nats/ca.crt" $tlsDir | toJson }}
{{- if .clientCert }}
cert_file = {{ printf "%s/nats/tls.crt" $tlsDir | toJson }}
key_file = {{ printf "%s/nats/tls.key" $tlsDir | toJson }}
{{- end }}
{{- end }}
required = {{ .required }}
{{- end }}
{{- end }}
{{- end }}
{{- range $section := list "streams" "log" }}
{{- with get $.Values.config $section }}

[{{ $section }}]
{{- include "hooknorm.toml.keys" . }}
{{- end }}
{{- end }}
{{- if not .Values.apiKeys.none }}
{{- if not .Values.apiKeys.keys }}
{{- fail "apiKeys.keys: give at least one key, or set apiKeys.none: true to let any caller that reaches the grpc port ingest and read" }}
{{- end }}

[auth]
received_at_skew_seconds = {{ int .Values.apiKeys.received_at_skew_seconds }}
{{- range $i, $entry := .Values.apiKeys.keys }}

[[auth.keys]]
name = {{ toJson $entry.name }}
{{- include "hooknorm.toml.keys" (omit $entry "name" "secretKey" "secretValue" "key_sha256") }}
{{- if $entry.key_sha256 }}
key_sha256 = {{ toJson $entry.key_sha256 }}
{{- else if or $entry.secretKey $entry.secretValue }}
key = {{ include "hooknorm.toml.value" (get $secretAt (printf "api-keys/%d" $i)) }}
{{- end }}
{{- end }}
{{- end }}

[tls]
reload_interval_seconds = {{ int .Values.tls.reloadIntervalSeconds }}
{{- with .Values.tls.grpc }}
{{- if .existingSecret }}

[tls.grpc]
cert = {{ printf "%s/grpc/tls.crt" $tlsDir | toJson }}
key = {{ printf "%s/grpc/tls.key" $tlsDir | toJson }}
{{- if .clientCa }}
client_ca = {{ printf "%s/grpc/ca.crt" $tlsDir | toJson }}
{{- end }}
require_client_cert = {{ .requireClientCert }}
{{- end }}
{{- end }}
{{- with .Values.tls.http }}
{{- if .existingSecret }}

[tls.http]
cert = {{ printf "%s/http/tls.crt" $tlsDir | toJson }}
key = {{ printf "%s/http/tls.key" $tlsDir | toJson }}
{{- end }}
{{- end }}
{{- range $source := .Values.webhooks.sources }}
{{- $scheme := include "hooknorm.sourceScheme" $source }}
{{- $field := include "hooknorm.schemeSecretKey" $scheme }}
{{- $verification := merge (dict "scheme" $scheme) (default dict $source.verification) }}
{{- $refs := list }}
{{- range $i, $_ := concat (default list $source.secretKeys) (default list $source.secretValues) }}
{{- $refs = append $refs (get $secretAt (printf "sources/%s/%d" $source.name $i)) }}
{{- end }}
{{- if eq $field "password" }}{{ $_ := set $verification "password" (first $refs) }}
{{- else if $field }}{{ $_ := set $verification $field $refs }}
{{- end }}

[[sources]]
name = {{ toJson $source.name }}
provider = {{ toJson $source.provider }}
{{- with $source.allowed_cidrs }}
allowed_cidrs = {{ include "hooknorm.toml.value" . }}
{{- end }}
verification = {{ include "hooknorm.toml.value" $verification }}
{{- end }}
{{ end }}
