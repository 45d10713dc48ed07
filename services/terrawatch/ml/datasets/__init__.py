"""TorchGeo-style datasets for the flood models; every S1 input comes out in dB.

Each dataset is a ``torch.utils.data.Dataset`` whose items are dicts of numpy arrays:
``"s1"`` (2, H, W) float32 sigma0 dB (VV, VH; NaN = no data), optionally ``"s2"`` (13, H, W)
float32 reflectance x 10000, ``"mask"`` (H, W) int64 (1 positive, 0 negative, -1 no data) and
``"id"`` (str). ``transforms`` (a callable on the dict) is applied last, like TorchGeo.
The PNG -> dB mappings the loaders assume are in :mod:`terrawatch.ml.datasets.png_db`.
"""

from terrawatch.ml.datasets.etci2021 import ETCI2021
from terrawatch.ml.datasets.ombria import OmbriaS1
from terrawatch.ml.datasets.png_db import ETCI_VH_DB, ETCI_VV_DB, ombria_png_to_db, png_to_db
from terrawatch.ml.datasets.sen1floods11 import Sen1Floods11

DATASETS = {"sen1floods11": Sen1Floods11, "etci2021": ETCI2021, "ombria-s1": OmbriaS1}

__all__ = ["DATASETS", "ETCI2021", "ETCI_VH_DB", "ETCI_VV_DB", "OmbriaS1", "Sen1Floods11", "ombria_png_to_db", "png_to_db"]
