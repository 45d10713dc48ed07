"""CLI errors are one line on stderr with a non-zero exit code; the traceback only with --debug."""

from __future__ import annotations

import subprocess
import sys

from terrawatch_dev.samples import synthetic_s1


def _cli(*args: str) -> subprocess.CompletedProcess:
    # a closed port: nothing may be published (and nothing is, the file is refused first)
    env = {"TERRAWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:9", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "terrawatch.cli", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_publish_of_a_truncated_geotiff_is_one_line_and_exit_1(tmp_path):
    whole = tmp_path / "whole.tif"
    synthetic_s1(whole, size=512)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    res = _cli("publish", str(cut))
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("terrawatch: error: cut.tif is not a readable GeoTIFF"), lines
    debug = _cli("--debug", "publish", str(cut))
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UnreadableAsset" in debug.stderr


def test_usage_errors_exit_2_without_traceback():
    res = _cli("dlq", "redrive")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "--all" in res.stderr
