#!/usr/bin/env bash
# Install Debian's GDAL command-line tools (ogrinfo/ogr2ogr: the GIS-client check of the OGC API in
# tests/integration/test_api.py reads every layer the way QGIS does, through GDAL's OAPIF driver). Idempotent.
set -euo pipefail
if command -v ogrinfo >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends gdal-bin >/dev/null
command -v ogrinfo
