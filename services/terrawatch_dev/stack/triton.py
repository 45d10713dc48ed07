"""NVIDIA Triton Inference Server from the ``nvidia-pytriton`` wheel, serving ``models/``.

The wheel ships a real ``tritonserver`` (2.5x) with the Python backend. We lay out a
copy of its distribution with the Python-backend stub matching this interpreter,
as pytriton itself does, and run the binary on a plain model repository.
"""

from __future__ import annotations

import os
import shutil
import site
import sys
import sysconfig
import urllib.request
from pathlib import Path

from terrawatch.settings import REPO_ROOT, Settings
from terrawatch_dev.stack.process import ManagedProcess, wait_until


def _pytriton_root() -> Path:
    import pytriton

    return Path(pytriton.__file__).resolve().parent


class Triton:
    name = "triton"

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.proc = ManagedProcess(self.name, settings.state_dir)
        self.dist = settings.state_dir / "triton" / "dist"

    def install(self) -> None:
        _pytriton_root()  # raises ImportError if the wheel is missing

    def _prepare(self) -> None:
        src = _pytriton_root() / "tritonserver"
        shutil.rmtree(self.dist, ignore_errors=True)
        shutil.copytree(src, self.dist, ignore=shutil.ignore_patterns("python_backend_stubs"))
        ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
        shutil.copy(src / "python_backend_stubs" / ver / "triton_python_backend_stub",
                    self.dist / "backends" / "python" / "triton_python_backend_stub")

    def env(self) -> dict[str, str]:
        libs = _pytriton_root().parent / "nvidia_pytriton.libs"
        libdir = sysconfig.get_config_var("LIBDIR")
        pypath = [str(REPO_ROOT / "services"), *site.getsitepackages()]
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(p for p in [str(libs), libdir, env.get("LD_LIBRARY_PATH", "")] if p)
        # The Python backend's embedded interpreter ignores PYTHONPATH, so model.py files
        # prepend TERRAWATCH_PYTHONPATH to sys.path themselves.
        env["TERRAWATCH_PYTHONPATH"] = ":".join(pypath)
        env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "2")
        env["TERRAWATCH_MODEL_REPOSITORY"] = str(self.s.model_repository)
        return env

    def start(self) -> None:
        if self.proc.pid():
            return
        self._prepare()
        self.proc.start(
            [str(self.dist / "bin" / "tritonserver"),
             f"--model-repository={self.s.model_repository}",
             f"--backend-directory={self.dist / 'backends'}",
             f"--cache-directory={self.dist / 'caches'}",
             f"--http-port={self.s.triton_http_port}",
             f"--grpc-port={self.s.triton_grpc_port}",
             f"--metrics-port={self.s.triton_metrics_port}",
             "--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
             "--model-control-mode=poll", "--repository-poll-secs=30",
             "--exit-on-error=false", "--log-verbose=0"],
            env=self.env(),
        )

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.s.triton_http_port}/v2/health/ready"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def wait(self, timeout: float = 180) -> None:
        wait_until(self.healthy, timeout, "triton", self.proc.log_file)

    def stop(self) -> bool:
        return self.proc.stop(timeout=30)
