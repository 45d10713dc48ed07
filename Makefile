# terrawatch: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PY ?= python3
UV := $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
TW := $(VENV)/bin/terrawatch

.PHONY: env env-test web chromium gdal demo bench bench-sustained bench-api test-faults test test-unit test-quality test-integration stop status check-deploy bench bench-scale bench-raster clean

$(UV):
	$(PY) -m pip install --quiet --user uv || $(PY) -m pip install --quiet uv

env: $(UV)  ## create .venv from uv.lock (runtime dependencies)
	$(UV) sync --frozen --inexact --quiet

env-test: $(UV)  ## .venv with every dependency group (pytest, the Keras port check, API test clients)
	$(UV) sync --frozen --all-groups --quiet

WEB := services/terrawatch/api/web

web:  ## build /map (MapLibre GL JS from npm, bundled with esbuild)
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error && npm run build

chromium:  ## Debian Chromium for the /map browser test
	bash deploy/tools/install-chromium.sh

gdal:  ## Debian GDAL tools (ogrinfo) for the OGC API client check
	bash deploy/tools/install-gdal.sh

demo: env web  ## start the stack, run the sample scenes end to end, print a JSON summary as the last line
	$(TW) demo

test: env-test web chromium gdal check-deploy  ## deploy checks, then unit + integration tests on the real local stack (pytest starts and stops it), then the pipeline under a broker kill on the 3-broker SCRAM stack; missing ../shared/data fails
	$(VENV)/bin/pytest -q --require-data
	TERRAWATCH_TEST_KAFKA_BROKERS=3 $(VENV)/bin/pytest -q --require-data -m multinode tests/faults/test_multinode_pipeline.py

test-unit: env-test  ## the fast unit suite (tests/unit: no stack, no model training; under 30 s)
	$(VENV)/bin/pytest -q tests/unit

test-quality: env-test  ## model training and quality checks on the real data (tests/quality; slow)
	$(VENV)/bin/pytest -q tests/quality

test-integration: env-test
	$(VENV)/bin/pytest -q tests/integration

status: env
	$(TW) stack status

stop: env  ## stop the demo's worker and the local stack (only processes it started)
	$(TW) stack down

check-deploy:
	bash deploy/check.sh

bench: env  ## bare network (torch vs ONNX Runtime, FLOPs, fraction of peak) and end-to-end CPU-s per tile, model vs overhead (JSON last line)
	$(TW) bench pipeline

bench-sustained: env  ## N scenes/hour for M minutes: lag trend and RSS
	$(TW) bench sustained

bench-api: env  ## vector tiles and OGC features under concurrent load: p50/p95, errors
	$(TW) bench api

bench-raster: env  ## raster tiles per zoom (z5..native): time, peak memory, level read; small vs full-size S2 scene
	$(VENV)/bin/python bench/bench_raster_tiles.py

test-faults: env-test  ## only the fault-injection and hostile-input suites
	$(VENV)/bin/pytest -q tests/faults tests/hostile

bench-scale: env  ## full-size S2 tile through RayTiler + Triton: peak RSS, tiles/s (JSON last line; several minutes)
	$(VENV)/bin/python bench/bench_scale.py

clean: stop
	rm -rf .terrawatch
