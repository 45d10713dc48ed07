"""The hazard registry: the one place that says what a hazard is and how it is computed (pure).

For each (sensor, hazard) pair the pipeline can run: the Triton model and its tensor spec, how it
runs over a tile (``kind``), the setting holding its probability threshold, the exclusion flag it
records where it gives no estimate, the processing levels it was trained on, extra steps after
vectorizing, and its **area of applicability** (AoA): ``models/<model>/aoa.geojson``, the region
its training data came from (widen it with ``TERRAWATCH_AOA_OVERRIDES`` when a model is retrained).

Readers: ``service/pipeline.py`` (jobs, thresholds, steps, AoA), ``inference/strategies.py`` (the probability
step per ``kind``), ``inference/triton.py`` (tensor
names), ``inference/triton_backend.py`` (the served models' tensors), ``domain/scene.py`` (default
hazards per sensor), ``service/worker.py`` (via ``inference.triton.MODELS``); ``models/*/config.pbtxt``
and ``alerts/rules/*.yaml`` are checked against it by ``tests/unit/test_hazard_registry.py``, the scene-event
schema's hazard enum and the map page's colours by ``tests/unit/test_hazard_kinds.py``. It also carries each
hazard's colour and raster ramp (``STYLES``: ``products/tiles.RAMPS`` and ``api/routes/map.HAZARD_COLOURS`` are
derived from it) and each model's backend class and CPU-only flag (``ModelSpec``: ``inference/serving.CPU_ONLY``
is derived from it; ``models/*/1/model.py`` is checked against it). The files a new hazard touches:
docs/architecture.md, "Adding a hazard".
"""

from __future__ import annotations

from dataclasses import dataclass

from terrawatch.domain.sensors import Sensor
from terrawatch.domain.tiles import EXCLUDED_CLOUD, EXCLUDED_RADAR

# Extra steps after vectorizing (names used by the pipeline)
STEP_REFERENCE_WATER = "reference_water"  # flood = observed water minus the reference-water layer
STEP_LEGALITY = "legality"  # mining: licensed / illegal / unknown against the reference layers


@dataclass(frozen=True)
class Tensor:
    """A Triton tensor without the batch axis; -1 = any size. Always FP32."""

    name: str
    dims: tuple[int, ...]


@dataclass(frozen=True)
class ModelSpec:
    """A Triton model: batched float32 inputs (N, *dims) in this order -> output (N, *dims).

    ``backend``: the ``terrawatch.inference.triton_backend`` class that ``models/<name>/1/model.py`` serves as
    ``TritonPythonModel``. ``cpu_only``: no torch/ONNX net (index thresholds): a GPU instance would only hold
    memory, so serving renders it ``KIND_CPU`` whatever the setting.
    """

    name: str
    inputs: tuple[Tensor, ...]
    output: Tensor
    max_batch_size: int
    backend: str
    cpu_only: bool = False

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_name(self) -> str:
        return self.output.name


S2_13 = (13, -1, -1)  # B1..B12 incl. B8A and B10, reflectance x 10000, one 10 m grid

MODELS: dict[str, ModelSpec] = {m.name: m for m in (
    # (N, 2, H, W) S1 VV, VH in dB -> (N, 1, H, W) water probability
    ModelSpec("flood_s1", (Tensor("S1_DB", (2, -1, -1)),), Tensor("WATER_PROB", (1, -1, -1)), 8, "FloodS1Model"),
    # (N, 13, H, W) S2 L1C reflectance x 10000 -> (N, 1, H, W) water probability
    ModelSpec("flood_s2", (Tensor("S2_TOA", S2_13),), Tensor("WATER_PROB", (1, -1, -1)), 8, "FloodS2Model",
              cpu_only=True),
    # pre and post (N, 13, H, W) S2 L1C x 10000 on one grid -> (N, 1, H, W) forest-loss probability
    ModelSpec("deforestation_s2", (Tensor("PRE_TOA", S2_13), Tensor("POST_TOA", S2_13)),
              Tensor("LOSS_PROB", (1, -1, -1)), 8, "DeforestationModel"),
    # (N, 12, 48, 48) scaled S2 patches (terrawatch.ml.mining.to_model_input) -> (N, 1) mine probability
    ModelSpec("mining_s2", (Tensor("PATCHES", (12, 48, 48)),), Tensor("MINE_PROB", (1,)), 64, "MiningModel"),
)}


@dataclass(frozen=True)
class HazardStyle:
    """How a hazard is drawn: ``colour`` (CSS hex) for its detections and alerts on the map and in the styles,
    ``ramp`` (a rio-tiler colormap name) for its 0-100 likelihood raster (0 transparent)."""

    colour: str
    ramp: str


STYLES: dict[str, HazardStyle] = {
    "flood": HazardStyle("#1f78b4", "blues"),
    "deforestation": HazardStyle("#33a02c", "ylorrd"),
    "mining": HazardStyle("#e6550d", "rdpu"),
}


@dataclass(frozen=True)
class HazardModel:
    """How ``hazard`` is computed from ``sensor`` scenes.

    ``kind``: ``segment`` (tile in, per-pixel probability out), ``patches`` (a patch classifier slid
    over the tile) or ``bitemporal`` (an earlier scene of the footprint and this one).
    ``threshold_setting``: the :class:`terrawatch.settings.Settings` field with the 0-1 threshold.
    ``excluded_flag``: the ``domain.tiles`` exclusion bit where the model gives no estimate on valid input.
    ``levels``: processing levels the model takes (``Scene.level``); other levels are skipped with the
    reason recorded. flood_s2 and deforestation_s2 were built on L1C and also take L2A surface
    reflectance (per-image index thresholds; 12 bands, B10 unused); mining_s2 takes L1C only.
    ``aoa``: area-of-applicability GeoJSON, relative to the model repository.
    ``change_gate``: a ``segment`` model that, given a pre-event scene of the same place and relative orbit,
    keeps only the water where the backscatter fell (S1 flood: ``terrawatch.ml.change_s1.gate_by_change``);
    without one it runs alone.
    """

    hazard: str
    sensor: Sensor
    model: str
    kind: str
    threshold_setting: str
    excluded_flag: int
    levels: tuple[str, ...]
    steps: tuple[str, ...] = ()
    change_gate: bool = False

    @property
    def spec(self) -> ModelSpec:
        return MODELS[self.model]

    @property
    def aoa(self) -> str:
        return f"{self.model}/aoa.geojson"


REGISTRY: tuple[HazardModel, ...] = (
    HazardModel("flood", Sensor.S1, "flood_s1", "segment", "flood_threshold", EXCLUDED_RADAR, ("GRD", "RTC"),
                (STEP_REFERENCE_WATER,), change_gate=True),
    HazardModel("flood", Sensor.S2, "flood_s2", "segment", "flood_threshold", EXCLUDED_CLOUD, ("L1C", "L2A"),
                (STEP_REFERENCE_WATER,)),
    HazardModel("deforestation", Sensor.S2, "deforestation_s2", "bitemporal", "deforestation_threshold",
                EXCLUDED_CLOUD, ("L1C", "L2A")),
    HazardModel("mining", Sensor.S2, "mining_s2", "patches", "mining_threshold", EXCLUDED_CLOUD, ("L1C",),
                (STEP_LEGALITY,)),
)

HAZARDS: tuple[str, ...] = tuple(dict.fromkeys(h.hazard for h in REGISTRY))


def model_for(sensor: Sensor, hazard: str) -> HazardModel | None:
    """The registry entry computing ``hazard`` from ``sensor`` scenes, or None."""
    return next((h for h in REGISTRY if h.sensor == sensor and h.hazard == hazard), None)


def hazards_for(sensor: Sensor) -> tuple[str, ...]:
    """Every hazard the registry computes from ``sensor`` scenes (a scene's default hazards)."""
    return tuple(h.hazard for h in REGISTRY if h.sensor == sensor)
