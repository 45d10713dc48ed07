#!/usr/bin/env bash
# Copy the canonical alert rules and dashboard into the Helm chart (helm can only read
# files inside the chart). deploy/check.sh fails when the copies differ.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cp "$root/alerts/prometheus/terrawatch-rules.yaml" "$root/helm/terrawatch/files/terrawatch-rules.yaml"
cp "$root/deploy/grafana/terrawatch.json" "$root/helm/terrawatch/files/terrawatch.json"
echo "chart files synced"
