{{/*
The base of every object's name: the release name, with the chart's name appended unless the
release name already contains it (Helm's convention), or fullnameOverride. Names are DNS
labels: 63 characters at most.
*/}}
{{- define "example-service.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
The name of one of the release's other objects: (list $ "prometheus") -> <fullname>-prometheus.
*/}}
{{- define "example-service.name" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "example-service.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
What selects one application's pods: its name (example-service, prometheus, alertmanager),
which prometheus.yml's relabelling also keys on, and the release, so that two releases in
one namespace never select each other's pods. Argument: (list $ "prometheus").
*/}}
{{- define "example-service.selectorLabels" -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
{{- end -}}

{{/*
The labels of every object: the selector labels, the application the object belongs to, and
those Helm adds by convention (chart, version, managed-by). Argument: (list $ "prometheus").
*/}}
{{- define "example-service.labels" -}}
{{- $root := index . 0 -}}
{{ include "example-service.selectorLabels" . }}
app.kubernetes.io/part-of: example-service
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/*
The labels of a workload and its pods: the object's labels and its component (server,
monitoring). Argument: (list $ "prometheus" "monitoring").
*/}}
{{- define "example-service.workloadLabels" -}}
{{ include "example-service.labels" . }}
app.kubernetes.io/component: {{ index . 2 }}
{{- end -}}

{{/*
The service's image: repository@digest when a digest is given (the content itself, whatever
a tag later points to), else repository:tag, the tag defaulting to the chart's appVersion.
*/}}
{{- define "example-service.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The service account of the service's pods: the one the chart creates (named after the release
unless serviceAccount.name says otherwise), an existing one by name, or none (the
namespace's default).
*/}}
{{- define "example-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "example-service.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
A file of files/, which links to the repository's own copy (see README.md). Fails, rather than
rendering an empty configuration, where the link was not followed (a checkout without
symbolic links turns it into a one-line text file holding the target's path).
Argument: (list $ "files/prometheus/prometheus.yml").
*/}}
{{- define "example-service.file" -}}
{{- $root := index . 0 -}}
{{- $path := index . 1 -}}
{{- $content := $root.Files.Get $path -}}
{{- if not (contains "\n" $content) -}}
{{- fail (printf "%s is empty or a bare link target: the chart's files/ are symbolic links to deploy/; use a checkout with symbolic links, or the packaged chart (make chart)" $path) -}}
{{- end -}}
{{- $content -}}
{{- end -}}
