"""Cache of frozen-backbone features and grid labels for training spec-diff-net on a CPU.

The EfficientNet-Lite0 backbone is frozen, so its features are computed once per image,
scale and flip and stored on disk; training then runs only the small feature head, the
diffusion module and the interpolation. One cache item (a ``.pt`` file of tensors, loadable
with ``weights_only=True``) holds, for an image resized by ``scale`` to a size that is a
multiple of 16 (and optionally mirrored left-right):

- ``f2, f4, f8, f16`` : float16 feature maps (C_l, H/s, W/s) of the pyramid;
- ``grid`` : int16 (K, H/8, W/8), each of the K human annotations reduced to the stride-8
  feature grid by majority vote inside each 8 x 8 cell;
- ``half`` : int16 (K, H/2, W/2), the annotations at half resolution (majority of 2 x 2).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from affseg.backbones.efficientnet_lite import snapped_size
from affseg.data import bsds
from affseg.data.io import atomic_write, write_json
from affseg.data.segmentations import SegmentationItem, item_digest
from affseg.errors import CorruptFileError, DatasetNotFoundError, InputError

#: Bump when the content of a cache item changes.
CACHE_VERSION = 1
#: Longer side a training photo is brought down to (the inference working side of ndd).
WORKING_SIDE = 1024


def bsds_items(root: str | os.PathLike[str] | None, split: str) -> list[SegmentationItem]:
    """The annotated images of one BSDS500 split, sorted by id.

    Raises
    ------
    DatasetNotFoundError
        Missing dataset or split folder, or a split without ground truth.
    """
    bsds.split_dirs(split, root)  # names the missing split and the ones present
    pairs = [
        SegmentationItem(i, bsds.image_path(root, split, i), (bsds.gt_path(root, split, i),))
        for i in bsds.list_split(root, split)
    ]
    pairs = [it for it in pairs if it.annotations[0].is_file()]
    if not pairs:
        raise DatasetNotFoundError(f"no BSDS500 {split!r} images with ground truth")
    return pairs


def block_majority(labels: np.ndarray, factor: int) -> np.ndarray:
    """Reduce label maps by a majority vote inside each ``factor x factor`` block.

    Parameters
    ----------
    labels : ndarray, shape (K, H, W), non-negative ints; H and W multiples of ``factor``
    factor : int

    Returns
    -------
    ndarray, shape (K, H / factor, W / factor), int64
        Ties go to the smallest label.
    """
    k, h, w = labels.shape
    hb, wb = h // factor, w // factor
    blocks = labels.reshape(k, hb, factor, wb, factor).transpose(0, 1, 3, 2, 4)
    blocks = np.sort(blocks.reshape(-1, factor * factor), axis=1)
    counts = (blocks[:, :, None] == blocks[:, None, :]).sum(2)
    best = blocks[np.arange(len(blocks)), counts.argmax(1)]
    return best.reshape(k, hb, wb).astype(np.int64)


def prepare_item(
    image: np.ndarray, annotations: Sequence[np.ndarray], scale: float, flip: bool
) -> tuple[torch.Tensor, np.ndarray]:
    """Resize (and mirror) an image and its annotations to the snapped size.

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
    annotations : sequence of ndarray, each (H, W) int
    scale : float
    flip : bool
        Mirror left-right.

    Returns
    -------
    image : Tensor, shape (1, 3, H', W'), float32 in [0, 1]
    labels : ndarray, shape (K, H', W'), int64 (nearest-neighbour resized)
    """
    import torch.nn.functional as F

    h, w = image.shape[:2]
    hs, ws = snapped_size(h, w, scale)
    x = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None] / 255.0
    x = F.interpolate(x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True)
    x = x.clamp(0, 1)
    # nearest resize: sample each target pixel centre
    ry = np.minimum(((np.arange(hs) + 0.5) * h / hs).astype(np.int64), h - 1)
    rx = np.minimum(((np.arange(ws) + 0.5) * w / ws).astype(np.int64), w - 1)
    labels = np.stack([np.asarray(a)[np.ix_(ry, rx)] for a in annotations]).astype(np.int64)
    if flip:
        x = x.flip(-1)
        labels = labels[:, :, ::-1].copy()
    return x, labels


class FeatureCache:
    """Disk cache of backbone features and grid labels, one ``.pt`` file per item.

    Parameters
    ----------
    cache_dir : path-like
        Folder of the cache (created). A ``manifest.json`` there records its settings.
    """

    def __init__(self, cache_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(cache_dir)
        self.dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(split: str, stem: str, scale: float, flip: bool) -> str:
        """File stem of one cache item."""
        return f"{split}_{stem}_s{int(round(scale * 100)):03d}_f{int(flip)}"

    def path(self, key: str) -> Path:
        """File of one cache item."""
        return self.dir / f"{key}.pt"

    def build(
        self,
        backbone: torch.nn.Module,
        items: Sequence[SegmentationItem],
        split: str,
        scales: Sequence[float],
        flips: Sequence[bool] = (False, True),
        progress: bool = True,
        working_side: int | None = WORKING_SIDE,
    ) -> list[str]:
        """Compute the missing items of a split and return all their keys.

        Parameters
        ----------
        backbone : EfficientNetLitePyramid
        items : sequence of SegmentationItem
            The photos and their segmentations (:mod:`affseg.data.segmentations`).
        split : str
        scales : sequence of float
        flips : sequence of bool
        progress : bool
            Show a tqdm bar.
        working_side : int or None
            A photo whose longer side exceeds this is first resized to it (``scales``
            then apply), as ``affseg segment`` works at a bounded side; None: never.

        Returns
        -------
        list of str
            Keys, ordered by image, then scale, then flip.

        Raises
        ------
        InputError
            The cache holds this split of other data (other files or reading rules).
        """
        from tqdm import tqdm

        sources = dict(self._manifest().get("sources") or {})
        known = dict(sources.get(split) or {})
        for it in items:
            digest = item_digest(it) + ("" if working_side is None else f"@{working_side}")
            if known.setdefault(it.stem, digest) != digest:
                raise InputError(
                    f"the feature cache {self.dir} holds {split}/{it.stem} of other data "
                    "(another file, --ignore-index or --regions); give another --cache "
                    "folder or delete it"
                )
        keys: list[str] = []
        todo = []
        for it in items:
            for s in scales:
                for f in flips:
                    k = self.key(split, it.stem, s, f)
                    keys.append(k)
                    if not self.path(k).is_file():
                        todo.append((it, s, f, k))
        if todo:
            bar = tqdm(todo, desc=f"caching {split} features", disable=not progress)
            for it, s, f, k in bar:
                self._build_one(backbone, it, s, f, k, working_side)
        sources[split] = known
        write_json(
            self.dir / "manifest.json",
            {
                "version": CACHE_VERSION,
                "backbone": "efficientnet-lite0",
                "dtype": "float16",
                "sources": sources,
            },
        )
        return keys

    def _manifest(self) -> dict[str, Any]:
        path = self.dir / "manifest.json"
        if not path.is_file():
            return {}
        try:
            return dict(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            raise CorruptFileError(f"cannot read the cache manifest {path}: {exc}") from None

    def _build_one(
        self,
        backbone: torch.nn.Module,
        item: SegmentationItem,
        scale: float,
        flip: bool,
        key: str,
        working_side: int | None = WORKING_SIDE,
    ) -> None:
        image = item.read_image()
        ann = item.read_annotations()
        if max(int(a.max()) for a in ann) > np.iinfo(np.int16).max:
            raise InputError(
                f"{item.annotations[0]}: more than {np.iinfo(np.int16).max} segments in one "
                "annotation (is this a segmentation?)"
            )
        side = max(image.shape[:2])
        base = 1.0 if working_side is None or side <= working_side else working_side / side
        x, labels = prepare_item(image, ann, scale * base, flip)
        with torch.no_grad():
            feats = backbone(x)
        blob = {
            f"f{s}": t[0].to(torch.float16).contiguous()
            for s, t in zip((2, 4, 8, 16), feats, strict=True)
        }
        blob["grid"] = torch.from_numpy(block_majority(labels, 8).astype(np.int16))
        blob["half"] = torch.from_numpy(block_majority(labels, 2).astype(np.int16))
        atomic_write(self.path(key), lambda tmp: torch.save(blob, tmp))

    def load(self, key: str) -> dict[str, torch.Tensor]:
        """One cache item (see the module docstring for its tensors)."""
        try:
            return torch.load(self.path(key), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise CorruptFileError(f"cannot read cache item {self.path(key)}: {exc}") from None
