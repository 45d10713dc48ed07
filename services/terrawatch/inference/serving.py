"""Triton serving by configuration: instance kind and count, GPUs, torch threads and the dynamic batcher.

The model configurations in ``models/*/config.pbtxt`` are written for the CPU machine the project is
developed on (``KIND_CPU``; flood_s1 two instances of 1 torch thread, measured faster than one of 2 on
2 cores in docs/performance.md; the others one instance of 2 threads). A deployment on GPUs does not edit them:
it renders a copy of the repository whose ``config.pbtxt`` files carry the serving settings
(``TERRAWATCH_TRITON_INSTANCE_KIND`` / ``_INSTANCE_COUNT`` / ``_GPUS`` / ``_TORCH_THREADS`` /
``_PREFERRED_BATCH`` / ``_QUEUE_DELAY_US`` / ``_RUNTIME`` / ``_ORT_PROVIDERS``; Helm: ``triton.serving``), every other file a symlink to the
original (weights are not copied). The Helm chart runs it in an init container of the Triton pod:

    python -m terrawatch.inference.serving /models /rendered-models

``model.py`` (``inference.triton_backend``) then runs the net on ``cuda:<device id>`` when Triton
gives it a ``KIND_GPU`` instance, on the CPU otherwise. Only the Python-backend models that run torch
(flood_s1, mining_s2, deforestation_s2) use the GPU; flood_s2 (numpy thresholds) stays on CPU instances
whatever the setting (``CPU_ONLY``). ``runtime`` (``torch`` or ``onnxruntime``, issue 29) and
``ort_providers`` (ONNX Runtime execution providers, e.g. ``TensorrtExecutionProvider,CUDAExecutionProvider,
CPUExecutionProvider``; ``auto`` = CPU, or CUDA then CPU on a GPU instance) are rendered as the models'
``runtime`` / ``ort_providers`` parameters (``inference.triton_backend.BatchedModel.runtime_net``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from terrawatch.domain.hazards import MODELS

CPU_ONLY = frozenset(m.name for m in MODELS.values() if m.cpu_only)  # no net: a GPU instance would only hold memory
RUNTIMES = ("torch", "onnxruntime")


@dataclass(frozen=True)
class Serving:
    """How Triton serves the models. ``kind``: ``cpu`` or ``gpu``; ``count``: instances per device
    (per GPU for ``gpu``; None = keep the model's instance group on CPU, 1 on GPU); ``gpus``: GPU ids for ``gpu`` (empty = every visible GPU); ``torch_threads``:
    intra-op threads per instance (CPU; 1 is enough on a GPU); ``preferred_batch``: dynamic-batcher
    preferred sizes (tiles; empty = keep the model's); ``queue_delay_us``: the batcher's longest wait for
    a fuller batch (None = keep the model's)."""

    kind: str = "cpu"
    count: int | None = None
    gpus: tuple[int, ...] = ()
    torch_threads: int | None = None
    preferred_batch: tuple[int, ...] = ()
    queue_delay_us: int | None = None
    runtime: str | None = None
    ort_providers: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "gpu"):
            raise ValueError(f"instance kind must be cpu or gpu, got {self.kind!r}")
        if self.count is not None and self.count < 1:
            raise ValueError(f"instance count must be >= 1, got {self.count}")
        if any(g < 0 for g in self.gpus) or any(b < 1 for b in self.preferred_batch):
            raise ValueError("GPU ids must be >= 0 and preferred batch sizes >= 1")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch threads must be >= 1, got {self.torch_threads}")
        if self.queue_delay_us is not None and self.queue_delay_us < 0:
            raise ValueError(f"queue delay must be >= 0 us, got {self.queue_delay_us}")
        if self.runtime is not None and self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {self.runtime!r}")

    @classmethod
    def from_settings(cls, s) -> Serving:
        return cls(kind=s.triton_instance_kind, count=s.triton_instance_count, gpus=_ints(s.triton_gpus),
                   torch_threads=s.triton_torch_threads, preferred_batch=_ints(s.triton_preferred_batch),
                   queue_delay_us=s.triton_queue_delay_us, runtime=getattr(s, "triton_runtime", None) or None,
                   ort_providers=getattr(s, "triton_ort_providers", None) or None)


def _ints(text: str | tuple | list | None) -> tuple[int, ...]:
    if text is None:
        return ()
    if isinstance(text, (tuple, list)):
        return tuple(int(v) for v in text)
    return tuple(int(v) for v in re.split(r"[,\s]+", text.strip()) if v)


_INSTANCE = re.compile(r"^instance_group\s*\[.*?\]\s*$", re.M | re.S)
_BATCHING = re.compile(r"^dynamic_batching\s*\{(?P<body>.*?)\}\s*$", re.M | re.S)


def _param_re(key: str) -> re.Pattern:
    return re.compile(r'^parameters:\s*\{\s*key:\s*"' + re.escape(key) + r'".*$', re.M)


def set_parameter(text: str, key: str, value: str) -> str:
    """``config.pbtxt`` text with the string parameter ``key`` set to ``value`` (replaced or appended)."""
    param = f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}'
    if _param_re(key).search(text):
        return _param_re(key).sub(param, text, count=1)
    return text.rstrip("\n") + "\n" + param + "\n"
_MAX_BATCH = re.compile(r"^max_batch_size:\s*(\d+)", re.M)


def render_config(text: str, serving: Serving, model: str = "") -> str:
    """``config.pbtxt`` text with ``serving`` applied: instance_group, dynamic_batching's preferred sizes
    and queue delay (sizes above the model's max_batch_size are dropped), the torch_threads parameter
    (added when the model has one or runs on a GPU). Raises ValueError on a config it cannot edit."""
    kind = "cpu" if model in CPU_ONLY else serving.kind
    count = serving.count or 1
    if kind == "gpu":
        gpus = f", gpus: [ {', '.join(map(str, serving.gpus))} ]" if serving.gpus else ""
        group = f"instance_group [ {{ count: {count}, kind: KIND_GPU{gpus} }} ]"
    else:
        group = f"instance_group [ {{ count: {count}, kind: KIND_CPU }} ]"
    if _INSTANCE.search(text):
        if serving.count is not None or kind == "gpu":
            text = _INSTANCE.sub(group, text, count=1)
    else:
        text = text.rstrip("\n") + "\n" + group + "\n"
    m = _BATCHING.search(text)
    if m and (serving.preferred_batch or serving.queue_delay_us is not None):
        body = m.group("body")
        max_batch = int(_MAX_BATCH.search(text).group(1)) if _MAX_BATCH.search(text) else 0
        lines = [ln for ln in body.strip().splitlines() if ln.strip()]
        if serving.preferred_batch:
            sizes = [b for b in serving.preferred_batch if not max_batch or b <= max_batch]
            lines = [ln for ln in lines if not ln.strip().startswith("preferred_batch_size")]
            if sizes:
                lines.insert(0, f"  preferred_batch_size: [ {', '.join(map(str, sizes))} ]")
        if serving.queue_delay_us is not None:
            lines = [ln for ln in lines if not ln.strip().startswith("max_queue_delay_microseconds")]
            lines.append(f"  max_queue_delay_microseconds: {serving.queue_delay_us}")
        text = text[:m.start()] + "dynamic_batching {\n" + "\n".join(lines) + "\n}" + text[m.end():]
    if serving.torch_threads is not None and model not in CPU_ONLY:
        text = set_parameter(text, "torch_threads", str(serving.torch_threads))
    if serving.runtime is not None and model not in CPU_ONLY:
        text = set_parameter(text, "runtime", serving.runtime)
    if serving.ort_providers is not None and model not in CPU_ONLY:
        text = set_parameter(text, "ort_providers", serving.ort_providers)
    return text


def render_repository(src: Path, dst: Path, serving: Serving) -> list[str]:
    """Mirror the model repository ``src`` into ``dst``: each ``<model>/config.pbtxt`` rendered with
    ``serving``, every other file and folder a symlink into ``src``. ``dst`` is replaced. Returns the
    models rendered."""
    src, dst = Path(src).resolve(), Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    done = []
    for model in sorted(p for p in src.iterdir() if p.is_dir()):
        cfg = model / "config.pbtxt"
        if not cfg.is_file():
            continue
        out = dst / model.name
        out.mkdir()
        for entry in model.iterdir():
            if entry.name != "config.pbtxt":
                os.symlink(entry, out / entry.name)
        (out / "config.pbtxt").write_text(render_config(cfg.read_text(), serving, model.name))
        done.append(model.name)
    return done


def main(argv: list[str] | None = None) -> None:
    from terrawatch.settings import Settings

    ap = argparse.ArgumentParser(description="Render a Triton model repository with the serving settings "
                                             "(TERRAWATCH_TRITON_INSTANCE_KIND, ..._COUNT, ..._GPUS, "
                                             "..._TORCH_THREADS, ..._PREFERRED_BATCH, ..._QUEUE_DELAY_US, "
                                             "..._RUNTIME, ..._ORT_PROVIDERS).")
    ap.add_argument("src", type=Path, help="model repository to read (e.g. /models)")
    ap.add_argument("dst", type=Path, help="where to write the rendered repository (replaced)")
    a = ap.parse_args(argv)
    serving = Serving.from_settings(Settings())
    models = render_repository(a.src, a.dst, serving)
    print(f"rendered {len(models)} models into {a.dst}: {', '.join(models)} ({serving})")


if __name__ == "__main__":
    main()
