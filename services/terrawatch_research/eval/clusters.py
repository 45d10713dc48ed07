"""Alert-sized clusters of flood-s1 water on the real-dB chips: which are true, which are false.

    python -m terrawatch_research.eval.clusters [--mmu-ha 0.5] [--merge-m 500]

For each Sen1Floods11 real-dB chip (the 7 in ``sen1floods11-extra`` and the Spain validation chip):
flood-s1 as served (probability >= 0.5), connected parts below ``mmu_ha`` dropped (the vectorizer's
MMU), parts within ``merge_m`` of each other joined (the alert rule's merge distance; 10 m pixels), and
each cluster's area (ha, 1 px = 0.01 ha), whether it touches labelled water, and its mean likelihood
(0-100). The flood rule's ``min_area_ha`` (alerts/rules/flood.yaml) was chosen from this table.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import ndimage as ndi

PX_HA = 0.01  # a 10 m pixel


def clusters(prob: np.ndarray, label: np.ndarray, mmu_ha: float = 0.5, merge_m: float = 500.0) -> list[dict]:
    """(H,W) water probability and (H,W) label (1 water, 0 dry, -1 unknown) -> clusters, largest first."""
    p = np.nan_to_num(prob)
    parts, n = ndi.label(p >= 0.5, structure=np.ones((3, 3)))
    sizes = ndi.sum(np.ones_like(p), parts, index=np.arange(1, n + 1)) * PX_HA
    keep = np.isin(parts, np.flatnonzero(sizes >= mmu_ha) + 1)
    r = int(round(merge_m / 10 / 2))
    disk = np.hypot(*np.mgrid[-r:r + 1, -r:r + 1]) <= r
    joined, m = ndi.label(ndi.binary_dilation(keep, disk))
    out = []
    for i in range(1, m + 1):
        cm = (joined == i) & keep
        out.append({"area_ha": round(float(cm.sum() * PX_HA), 2), "true": bool((cm & (label == 1)).any()),
                    "likelihood": round(float(p[cm].mean() * 100), 1)})
    return sorted(out, key=lambda c: -c["area_ha"])


def main(argv: list[str] | None = None) -> None:
    from terrawatch.ml.datasets import Sen1Floods11
    from terrawatch_research.eval.cv import DATA, VALIDATION_ID, _served
    from terrawatch_research.train.flood_s1_featnet import load_chips

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mmu-ha", type=float, default=0.5)
    ap.add_argument("--merge-m", type=float, default=500.0)
    a = ap.parse_args(argv)
    chips = load_chips(DATA / "sen1floods11-extra", exclude_events=())
    chips += [{"id": v["id"], "s1": v["s1"], "mask": v["mask"]} for v in Sen1Floods11(DATA / "sen1floods11")
              if v["id"] == VALIDATION_ID]
    predict = _served(True)
    result = {c["id"]: clusters(predict(c["s1"]), c["mask"], a.mmu_ha, a.merge_m) for c in chips}
    for cid, cl in result.items():
        print(cid, ", ".join(f"{c['area_ha']} ha {'true' if c['true'] else 'FALSE'} lk {c['likelihood']}" for c in cl))
    false = [c["area_ha"] for cl in result.values() for c in cl if not c["true"]]
    print(json.dumps({"largest_false_cluster_ha": max(false, default=0.0), "false_clusters": len(false),
                      "chips": result}))


if __name__ == "__main__":
    main()
