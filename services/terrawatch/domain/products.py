"""The one owner of a scene's names: the scene-id pattern and the product file names.

Scene ids (the scene event's STAC Item ``id``): 1-256 of ``A-Z a-z 0-9 . _ : -``, not only dots (so an id is
a safe folder name). ``domain/schemas/scene-event.schema.json`` states the same pattern (JSON Schema has no
import); ``tests/unit/test_hazard_kinds.py`` keeps the two equal.

Products of a scene live under ``<products dir>/<scene id>/``: ``<hazard>_likelihood.tif`` per hazard,
``flood_fused.tif`` (fused S1 + S2 flood), ``quicklook.tif`` and ``cloud_mask.tif`` (S2 L1C only).
"""

from __future__ import annotations

import re

from terrawatch.domain.hazards import HAZARDS

SCENE_ID_CHARS = r"^[A-Za-z0-9._:-]{1,256}$"
"""Characters and length only: the form HTTP path parameters check (pydantic's regex has no look-ahead)."""
SCENE_ID_PATTERN = r"^(?!\.+$)" + SCENE_ID_CHARS[1:]
"""The whole rule (also not only dots), as the scene-event schema states it."""
SCENE_ID = re.compile(SCENE_ID_PATTERN)

QUICKLOOK = "quicklook"
FLOOD_FUSED = "flood_fused"  # fused S1 + S2 flood (products/fused.py): band 1 likelihood, band 2 source code
CLOUD_MASK_FILE = "cloud_mask.tif"
QUICKLOOK_FILE = f"{QUICKLOOK}.tif"
FLOOD_FUSED_FILE = f"{FLOOD_FUSED}.tif"
LIKELIHOOD_SUFFIX = "_likelihood.tif"


def likelihood_file(hazard: str) -> str:
    """``<hazard>_likelihood.tif``: band 1 likelihood 0-100 (255 = excluded), band 2 exclusion flags."""
    return f"{hazard}{LIKELIHOOD_SUFFIX}"


PRODUCTS = (*HAZARDS, FLOOD_FUSED, QUICKLOOK)
"""What the raster API serves per scene (names in URLs)."""
FILES = {**{h: likelihood_file(h) for h in HAZARDS}, FLOOD_FUSED: FLOOD_FUSED_FILE, QUICKLOOK: QUICKLOOK_FILE}
"""Product name -> file name in the scene's folder."""
