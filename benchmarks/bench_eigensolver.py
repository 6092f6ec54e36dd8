"""Inference eigensolver for the diffusion embedding: simultaneous iteration vs ARPACK.

For BSDS500 val images (the train-only spec-diff-net's grid features, 40 x 60 grid,
17 x 17 window, Ne = 50), in one process:

* ``engine``: the model's inference path (T = 2 outer steps of 20 stencil applications
  of S on a 50-column block, one more step of ``grad_inner`` = 4, Rayleigh-Ritz);
* ``eigsh``: ``scipy.sparse.linalg.eigsh`` (ARPACK, implicitly restarted Lanczos) on a
  ``LinearOperator`` whose matvec is one application of the compiled stencil, 50 eigenpairs
  of largest magnitude, at several tolerances;
* the reference: dense LAPACK ``eigh`` of S (built by applying the stencil to I).

Accuracy: relative Frobenius error of the N x N diffusion distances D_t (learned t) against
the dense reference, and the largest relative error of the 50 eigenvalues.

Usage::

    python benchmarks/bench_eigensolver.py --images 3 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh


def _dist(emb: np.ndarray) -> np.ndarray:
    sq = (emb * emb).sum(1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * emb @ emb.T, 0.0)


def _one_image(net: Any, x: torch.Tensor, repeats: int, rows: dict[str, list]) -> tuple:
    """Time and score every solver on one image; append (ms, err D_t, err lambda, applications)."""
    from affseg.affinity.diffusion import simultaneous_iteration, spectral_embedding
    from affseg.affinity.graph import degrees, gaussian_affinity, normalized_operator
    from affseg.models.spec_diff_net import snap_size

    mod = net.diffusion
    t_diff = float(mod.t)
    hs, ws = snap_size(int(x.shape[2]), int(x.shape[3]))
    with torch.no_grad():
        xs = torch.nn.functional.interpolate(
            x, size=(hs, ws), mode="bilinear", align_corners=False, antialias=True
        ).clamp(0, 1)
        feats = net.head(net.backbone(xs))
        w = gaussian_affinity(feats, mod.mu, mod.k)
        deg = degrees(w)
        s = normalized_operator(w, deg)
    h, wd = s.grid
    n = h * wd
    dg = deg[0].double().numpy()
    scale = float(np.sqrt(dg.sum()))

    def embed(lam: np.ndarray, vec: np.ndarray, dg: np.ndarray = dg) -> np.ndarray:
        return scale * vec / np.sqrt(dg)[:, None] * np.abs(lam)[None, :] ** t_diff

    # dense reference
    with torch.no_grad():
        dense = s.apply(torch.eye(n, dtype=torch.float32)[None])[0].double().numpy()
    dense = 0.5 * (dense + dense.T)
    lam_all, vec_all = np.linalg.eigh(dense)
    top = np.argsort(-np.abs(lam_all))[: mod.n_eig]
    lam_ref = lam_all[top]
    d_ref = _dist(embed(lam_ref, vec_all[:, top]))
    norm = np.linalg.norm(d_ref)

    def engine() -> tuple[np.ndarray, np.ndarray, int]:
        with torch.no_grad():
            basis = simultaneous_iteration(s, mod.n_eig, mod.n_outer, mod.n_inner, mod.qr_every)
            basis = simultaneous_iteration(s, mod.n_eig, 1, net.grad_inner, None, basis)
            res = spectral_embedding(s, deg, basis, mod.t, mod.density)
        apps = mod.n_eig * (mod.n_outer * mod.n_inner + net.grad_inner + 1)
        return res.embedding[0].double().numpy(), res.eigenvalues[0].double().numpy(), apps

    def arpack(tol: float) -> tuple[np.ndarray, np.ndarray, int]:
        count = [0]

        def mv(v: np.ndarray) -> np.ndarray:
            count[0] += 1
            xv = torch.from_numpy(np.asarray(v, dtype=np.float32).reshape(1, n, 1))
            with torch.no_grad():
                return s.apply(xv).reshape(n).double().numpy()

        op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
        v0 = np.sqrt(dg / dg.sum())  # the top eigenvector of S (eigenvalue 1)
        lam, vec = eigsh(op, k=mod.n_eig, which="LM", tol=tol, v0=v0)
        order = np.argsort(-np.abs(lam))
        lam, vec = lam[order], vec[:, order]
        return embed(lam, vec), lam, count[0]

    solvers = {"engine (T=2 x m=20 + 4, Ne=50)": engine}
    for tol in (1e-2, 1e-4, 1e-6):
        solvers[f"eigsh ARPACK tol={tol:g}"] = lambda tol=tol: arpack(tol)
    for name, fn in solvers.items():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            emb, lam, apps = fn()
            times.append(time.perf_counter() - t0)
        err_d = float(np.linalg.norm(_dist(emb) - d_ref) / norm)
        la, lr = -np.sort(-np.abs(lam)), -np.sort(-np.abs(lam_ref))
        err_l = float(np.max(np.abs(la - lr) / lr))
        rows.setdefault(name, []).append((1000 * statistics.median(times), err_d, err_l, apps))
    return (h, wd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--weights", default="spec_diff_net_train_only.pt")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from affseg.data import bsds
    from affseg.methods.ndd import _image_tensor, shipped_model

    net = shipped_model(args.weights)
    print(f"learned t = {float(net.diffusion.t):.2f}, torch threads {torch.get_num_threads()}")
    rows: dict[str, list[tuple[float, float, float, int]]] = {}
    for image_id in bsds.list_split(None, "val")[: args.images]:
        x = _image_tensor(bsds.load_image(None, "val", image_id))
        grid = _one_image(net, x, args.repeats, rows)
        print(f"{image_id}: grid {grid[0]}x{grid[1]}, N = {grid[0] * grid[1]}", flush=True)
    print(
        f"\n| solver | ms per image (median of {args.repeats}, mean over {args.images} images) "
        "| rel. error of D_t | max rel. eigenvalue error | vector applications of S |"
    )
    print("|---|---:|---:|---:|---:|")
    for name, vals in rows.items():
        v = np.asarray(vals)
        print(
            f"| {name} | {v[:, 0].mean():.0f} | {v[:, 1].mean():.1e} | {v[:, 2].mean():.1e} "
            f"| {v[:, 3].mean():.0f} |"
        )


if __name__ == "__main__":
    main()
