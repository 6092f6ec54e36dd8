# Stubs of the compiled generic kernels (_kernels.pyx); the documented callers are
# affseg.affinity.graph, affseg.affinity.propagation and affseg.affinity.spectral.
import numpy as np
import numpy.typing as npt

_F32 = npt.NDArray[np.float32]
_Real = npt.NDArray[np.float32] | npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]

def stencil(coef: _Real, xpad: _Real, out: _Real, k: int, nthreads: int) -> None: ...
def correlate(grad: _Real, xpad: _Real, out: _Real, k: int, nthreads: int) -> None: ...
def propagate(
    h: _F32,
    a: _F32,
    centre: _F32,
    offs: _I64,
    iterations: int,
    keep: _F32,
    fixed: _F32,
    use_mask: bool,
    nthreads: int,
) -> _F32: ...
def segment_sums(f: _Real, gid: _I64, n_seg: int) -> npt.NDArray[np.float64]: ...
