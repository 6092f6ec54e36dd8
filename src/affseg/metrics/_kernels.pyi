# Stubs of the compiled boundary-matching kernels (_kernels.pyx); the documented wrappers
# are in affseg.metrics._boundary_match.
import numpy as np
import numpy.typing as npt

_I64 = npt.NDArray[np.int64]

def lapjvsp_rect(first: _I64, kk: _I64, cc: npt.NDArray[np.float64], nr: int, nc: int) -> _I64: ...
def match(
    my: _I64,
    mx: _I64,
    index: _I64,
    gy: _I64,
    gx: _I64,
    r: int,
    offsets: _I64,
    costs: npt.NDArray[np.float64],
    outlier: float,
) -> tuple[_I64, _I64]: ...
def thin(
    img: npt.NDArray[np.uint8], lut1: npt.NDArray[np.uint8], lut2: npt.NDArray[np.uint8]
) -> None: ...
