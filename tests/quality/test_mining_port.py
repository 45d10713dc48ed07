"""The torch port of the mining CNN matches the original Keras model (max abs diff < 1e-5).

Needs the test-only dependency group ``keras-check`` (tensorflow-cpu, which brings Keras 3 and
loads the legacy Keras 2 h5) and ``../shared/data``. Install with ``uv sync --group keras-check``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from terrawatch.ml import mining
from terrawatch.ml.nets.mining import PATCH, load_mining_cnn

from tests.conftest import SHARED as DATA, needs_shared

H5 = DATA / "mining-detector" / "48px_v3.2_2024-01-07.h5"
S2 = DATA / "sen1floods11" / "Spain_7370579_S2Hand.tif"
TOL = 1e-5

pytestmark = needs_shared("mining-detector/48px_v3.2_2024-01-07.h5", "sen1floods11/Spain_7370579_S2Hand.tif")


# The Keras model runs in a child process: TensorFlow's native libraries loaded into the pytest
# process make a later `import triton` (pulled in by torch._dynamo, e.g. by torch.optim) abort.
KERAS_SCRIPT = r"""
import os, sys
import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(1)
import keras
h5, src, dst = sys.argv[1:4]
model = keras.models.load_model(h5, compile=False)
both = keras.Model(model.inputs, [model.layers[-1].output, model.get_layer("dense_2").output])
data = np.load(src)
out = {}
for name in data.files:
    prob, feat = both([np.ascontiguousarray(data[name].transpose(0, 2, 3, 1))], training=False)
    out[name + "/prob"] = np.asarray(prob)[:, 0]
    out[name + "/feat"] = np.asarray(feat)
np.savez(dst, keras_version=keras.__version__, tf_version=tf.__version__, **out)
"""


@pytest.fixture(scope="module")
def keras_outputs(patch_sets, tmp_path_factory):
    """Keras (tensorflow-cpu) probabilities and penultimate activations for every patch set."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("keras-check dependency group not installed (uv sync --group keras-check): no tensorflow")
    d = tmp_path_factory.mktemp("keras")
    np.savez(d / "in.npz", **patch_sets)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(H5), str(d / "in.npz"), str(d / "out.npz")],
                         env=env, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    with np.load(d / "out.npz") as out:
        res = {k: out[k] for k in out.files}
    print(f"keras {res['keras_version']} / tensorflow {res['tf_version']}")
    return res


@pytest.fixture(scope="module")
def torch_model():
    torch.set_num_threads(2)
    return load_mining_cnn(H5)


@pytest.fixture(scope="module")
def patch_sets():
    import rasterio

    with rasterio.open(S2) as ds:
        x = mining.to_model_input(ds.read())
    rng = np.random.default_rng(20240107)
    _, h, w = x.shape
    ys = rng.integers(0, h - PATCH, 64)
    xs = rng.integers(0, w - PATCH, 64)
    real = np.stack([x[:, y : y + PATCH, c : c + PATCH] for y, c in zip(ys, xs)])
    # Known high-scoring windows on this chip (false positives) so both classes are exercised.
    grid = np.stack([x[:, y : y + PATCH, c : c + PATCH] for y in range(0, h - PATCH + 1, 48)
                     for c in range(0, w - PATCH + 1, 48)])
    uniform = rng.uniform(0.0, 0.5, (32, 12, PATCH, PATCH)).astype(np.float32)
    gains = rng.uniform(0.7, 1.3, (32, 12, 1, 1)).astype(np.float32)
    perturbed = np.clip(real[:32] * gains + rng.normal(0, 0.01, real[:32].shape), 0, 1).astype(np.float32)
    return {"real": real, "real_grid": grid, "random_uniform": uniform, "random_perturbed_real": perturbed}


def _torch_outputs(model, x_nchw):
    with torch.inference_mode():
        t = torch.from_numpy(x_nchw)
        feats = model.head[:-1](model.features(t).permute(0, 2, 3, 1).flatten(1))
        return model(t)[:, 0].numpy(), feats.numpy()


@pytest.mark.parametrize("name", ["real", "real_grid", "random_uniform", "random_perturbed_real"])
def test_port_matches_keras(keras_outputs, torch_model, patch_sets, name):
    x = patch_sets[name]
    k_prob, k_feat = keras_outputs[name + "/prob"], keras_outputs[name + "/feat"]
    t_prob, t_feat = _torch_outputs(torch_model, x)
    diff = float(np.abs(k_prob - t_prob).max())
    print(f"{name}: n={len(x)} max|keras-torch| prob={diff:.3g} "
          f"penultimate={float(np.abs(k_feat - t_feat).max()):.3g} prob range=[{k_prob.min():.3g}, {k_prob.max():.3g}]")
    assert diff < TOL
    # Probabilities saturate; the 32 penultimate activations show the whole net agrees, not just sigmoid tails.
    np.testing.assert_allclose(t_feat, k_feat, rtol=1e-4, atol=1e-4)


def test_real_patches_span_both_classes(keras_outputs):
    """Guards the comparison above against being vacuous (all outputs ~0)."""
    k_prob = keras_outputs["real_grid/prob"]
    assert k_prob.max() > 0.8 and k_prob.min() < 0.2


def test_shipped_weights_reproduce_keras(keras_outputs, patch_sets):
    """models/mining_s2/1/model.pt (what Triton serves) gives the Keras output too."""
    model = mining.load_model()
    got = mining.predict_patches(model, patch_sets["real_grid"])
    assert float(np.abs(got - keras_outputs["real_grid/prob"]).max()) < TOL
