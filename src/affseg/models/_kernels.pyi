# Stubs of the compiled HAM inference kernels (_kernels.pyx); the documented caller is
# affseg.models.ham_fast.
import numpy as np
import numpy.typing as npt

_F32 = npt.NDArray[np.float32]
_I64 = npt.NDArray[np.int64]

def expmap(
    x: _F32, c: float, ball_eps: float, min_norm: float, fac: _F32, nthreads: int
) -> None: ...
def distance(
    x: _F32, f: _F32, offs: _I64, hyperbolic: bool, sc: float, out: _F32, nthreads: int
) -> None: ...
def weights(
    x: _F32,
    f: _F32,
    half: _F32,
    strength: _F32,
    offs: _I64,
    hyperbolic: bool,
    sc: float,
    inv_tau: float,
    prio: _F32,
    normalize: bool,
    out: _F32,
    centre: _F32,
    nthreads: int,
) -> None: ...
