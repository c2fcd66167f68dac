{{/* Names, labels and the checks every template shares. */}}

{{- define "kuzet.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's object name: the release name, with "-kuzet" unless it says kuzet already. */}}
{{- define "kuzet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kuzet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kuzet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end -}}

{{- define "kuzet.labels" -}}
{{ include "kuzet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* KUZET_BROKER as KEDA reads it: host:port,host:port (Kuzet also takes kafka:// and ;). */}}
{{- define "kuzet.bootstrapServers" -}}
{{- .Values.kafka.broker | replace "kafka://" "" | replace ";" "," | nospace -}}
{{- end -}}

{{- define "kuzet.sasl" -}}
{{- hasPrefix "SASL" .Values.kafka.securityProtocol -}}
{{- end -}}

{{- define "kuzet.tls" -}}
{{- hasSuffix "SSL" .Values.kafka.securityProtocol -}}
{{- end -}}

{{/* Refuse values the worker would refuse at start, naming the value to fix. */}}
{{- define "kuzet.validate" -}}
{{- $protocols := list "PLAINTEXT" "SSL" "SASL_PLAINTEXT" "SASL_SSL" -}}
{{- if not (has .Values.kafka.securityProtocol $protocols) -}}
{{- fail (printf "kafka.securityProtocol=%q is not one of %s" .Values.kafka.securityProtocol (join ", " $protocols)) -}}
{{- end -}}
{{- $mechanisms := list "SCRAM-SHA-512" "SCRAM-SHA-256" "PLAIN" -}}
{{- if not (has .Values.kafka.saslMechanism $mechanisms) -}}
{{- fail (printf "kafka.saslMechanism=%q is not one of %s" .Values.kafka.saslMechanism (join ", " $mechanisms)) -}}
{{- end -}}
{{- if and (ne .Values.kafka.securityProtocol "PLAINTEXT") (not .Values.kafka.secret.name) -}}
{{- fail (printf "kafka.securityProtocol=%s needs kafka.secret.name: the existing Secret with the SASL credentials and/or the CA" .Values.kafka.securityProtocol) -}}
{{- end -}}
{{- if ne (not .Values.kafka.secret.certKey) (not .Values.kafka.secret.keyKey) -}}
{{- fail "kafka.secret.certKey and kafka.secret.keyKey go together (a client certificate and its key)" -}}
{{- end -}}
{{- if not (and .Values.secrets.name .Values.secrets.stateKeyKey) -}}
{{- fail "secrets.name and secrets.stateKeyKey must name the Secret holding KUZET_STATE_KEY: the worker refuses to start without it" -}}
{{- end -}}
{{- if .Values.env -}}
{{- range $name, $value := .Values.env -}}
{{- if not (hasPrefix "KUZET_" $name) -}}
{{- fail (printf "env.%s: env holds KUZET_* settings only" $name) -}}
{{- end -}}
{{- if not (kindIs "string" $value) -}}
{{- fail (printf "env.%s: quote the value (a string): Helm reads a bare number as a float, 2000000 as 2e+06" $name) -}}
{{- end -}}
{{- $owned := list "KUZET_BROKER" "KUZET_APP_ID" "KUZET_KAFKA_SECURITY_PROTOCOL" "KUZET_KAFKA_SASL_MECHANISM" "KUZET_KAFKA_SASL_USERNAME" "KUZET_KAFKA_SASL_PASSWORD" "KUZET_KAFKA_SSL_CAFILE" "KUZET_KAFKA_SSL_CERTFILE" "KUZET_KAFKA_SSL_KEYFILE" "KUZET_STATE_KEY" "KUZET_STATE_KEY_FILE" "KUZET_WEB_TOKEN" "KUZET_WEB_TOKEN_FILE" "KUZET_WEB_HOST" "KUZET_WEB_PORT" -}}
{{- if has $name $owned -}}
{{- fail (printf "env.%s: set it through its own value (kafka.*, secrets.*, web.port), not env" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
