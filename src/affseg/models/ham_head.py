"""UniDC-style affinity head for HAM (Park et al., ICML 2023).

:class:`RankedNeighbourHead` follows UniDC's ``HALM`` head: for each pixel ``p`` the
relative features of its ``K = k^2 - 1`` neighbours ``n`` are

* ``logmap0((-x_p) (+) x_n)`` (Mobius gyro-difference in the tangent space at 0) in the
  hyperbolic geometry, ``x_n - x_p`` in the Euclidean ("naive") one;
* **sorted by distance** (beta-priority: part ``r`` of the input is the ``r``-th nearest
  neighbour);
* weighted by the normalised distance ("geodesic weight" ``softmax(-d / tau)``; UniDC
  divides by ``softmax(d)``, which overflows for many neighbours; this is the stable form
  with the same ordering of weights);
* scaled by the HNN++ beta-concatenation ratio and concatenated into one ``K D`` vector.

A Mobius linear layer (``M (x) z (+) b``, then ``logmap0``) maps it to one logit per rank;
the Euclidean geometry uses the ordinary linear layer ``M z + b`` (the ``c -> 0`` limit),
so the two differ only in the geometry. Rank logits are scattered back to the neighbours
holding those ranks (the output follows the pixel's own ordering, so each rank's weight
row applies to "the r-th nearest neighbour", wherever it lies).

Affinities of several kernel sizes (3/5/7) are mixed into one kernel by
:func:`affseg.affinity.propagation.mix_kernels`.

References
----------
.. [1] J.-H. Park, J. Choe, I. Bae and H.-G. Jeon, "Learning Affinity with Hyperbolic
   Representation for Spatial Propagation", ICML 2023.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from affseg.affinity.hyperbolic import beta_concat_ratio, expmap0, logmap0, mobius_add, project
from affseg.affinity.propagation import Geometry


class RankedNeighbourHead(nn.Module):
    """Per-rank affinity logits from distance-sorted neighbour features.

    Parameters
    ----------
    geometry : {"hyperbolic", "euclidean"}
    k : int
        Kernel size (K = k*k - 1 neighbours).
    embed_dim : int
        Embedding size D.
    init_std : float
        Std of the initial weight matrix (small: the head starts close to zero logits).
    """

    def __init__(self, geometry: Geometry, k: int, embed_dim: int, init_std: float = 1e-2) -> None:
        super().__init__()
        kk = k * k - 1
        self.geometry = geometry
        self.k = k
        self.scale = beta_concat_ratio(embed_dim, kk)
        self.weight = nn.Parameter(torch.randn(kk, kk * embed_dim) * init_std)
        self.bias = nn.Parameter(torch.zeros(kk))

    def forward(self, rel: Tensor, weight: Tensor, order: Tensor, c: Tensor | float) -> Tensor:
        """Logit of every neighbour.

        Parameters
        ----------
        rel : Tensor, shape (B, K, D, H, W)
            Relative neighbour features in the tangent space at 0 (hyperbolic:
            ``logmap0((-x_p) (+) x_n)``; Euclidean: ``e_n - e_p``).
        weight : Tensor, shape (B, K, H, W)
            Geodesic weights (per-pixel softmax of ``-d / tau``).
        order : Tensor of int64, shape (B, K, H, W)
            ``order[:, r]`` = index of the ``r``-th nearest neighbour (argsort of ``d``).
        c : Tensor or float
            Curvature (hyperbolic only).

        Returns
        -------
        Tensor, shape (B, K, H, W)
            Logit of each neighbour (in neighbour order, not rank order).
        """
        b, kk, dim, h, w = rel.shape
        z = rel * (weight * self.scale).unsqueeze(2)
        z = z.gather(1, order.unsqueeze(2).expand(b, kk, dim, h, w))
        z = z.reshape(b, kk * dim, h, w).permute(0, 2, 3, 1)  # (B, H, W, K D), rank-major
        lin = z @ self.weight.T
        if self.geometry == "hyperbolic":
            # M (x) expmap0(z) = expmap0(M z) (Mobius linear layer on the beta-concatenated
            # point, in closed form), then (+) the bias point and back to the tangent space.
            y = mobius_add(expmap0(lin, c), expmap0(self.bias, c), c)
            logits = logmap0(project(y, c), c)
        else:
            logits = lin + self.bias
        return torch.empty_like(weight).scatter(1, order, logits.permute(0, 3, 1, 2))
