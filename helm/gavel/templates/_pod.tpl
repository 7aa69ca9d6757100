{{/* The environment of a service's container: its config file, and each secret from existingSecret. */}}
{{- define "gavel.env" -}}
- name: GAVEL_CONFIG
  value: /etc/gavel/config.toml
{{- range $key, $secretKey := .svc.secretEnv }}
- name: {{ include "gavel.envName" $key }}
  valueFrom:
    secretKeyRef:
      name: {{ $.root.Values.existingSecret }}
      key: {{ $secretKey }}
{{- end }}
{{- end -}}

{{/* Volumes every pod mounts: its config and a writable /tmp under a read-only root. */}}
{{- define "gavel.volumes" -}}
- name: config
  configMap:
    name: {{ include "gavel.serviceName" (dict "root" .root "name" .name) }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}

{{- define "gavel.volumeMounts" -}}
- name: config
  mountPath: /etc/gavel
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end -}}
