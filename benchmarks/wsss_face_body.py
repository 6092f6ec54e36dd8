"""Where the face and body pixels of MSRC-21 val go, per weak network (a diagnostic).

    PYTHONPATH=src python benchmarks/wsss_face_body.py NAME=WEIGHTS ...

For each weights file (``wsss`` or ``cam``): the weak network's class maps restricted to
each val image's known labels (the pseudo-label rule), upsampled bilinearly, and the
share of the ground-truth face and body pixels given each class (top three).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from affseg.data.msrc import MSRC21_CLASS_NAMES, load_ground_truth
from affseg.methods.wsss import build_weak, fuse_scores, load_weights, upsample_probs, weak_outputs
from affseg.train.wsss_cache import load_cache


def main() -> None:
    torch.set_num_threads(1)
    items = load_cache("runs/wsss/cache", "val")
    pair = [MSRC21_CLASS_NAMES.index(n) for n in ("face", "body")]
    with torch.no_grad():
        for spec in sys.argv[1:]:
            name, path = spec.split("=", 1)
            blob = load_weights(path)
            weak = build_weak(blob)
            kind = "cam" if blob["method"] == "cam" else "wsss"
            hist = {c: np.zeros(len(MSRC21_CLASS_NAMES)) for c in pair}
            for it in items:
                if not any(float(it["labels"][c - 1]) > 0 for c in pair):
                    continue
                _, maps = weak_outputs(weak, kind, it)
                known = it["labels"].float() * 0.98 + 0.01
                q = fuse_scores(maps + 1e-6, None, known, 0.5, 0.0)
                pred = (upsample_probs(q, it, mode="bilinear").argmax(0) + 1).numpy()
                gt = load_ground_truth(None, "val", it["id"], msrc21=True)
                for c in pair:
                    hist[c] += np.bincount(pred[gt == c], minlength=len(MSRC21_CLASS_NAMES))
            for c in pair:
                share = hist[c] / max(hist[c].sum(), 1.0)
                top = np.argsort(-share)[:3]
                parts = ", ".join(f"{MSRC21_CLASS_NAMES[t]} {100 * share[t]:.0f} %" for t in top)
                print(f"{name}: GT {MSRC21_CLASS_NAMES[c]} pixels -> {parts}", flush=True)


if __name__ == "__main__":
    main()
