import numpy as np
import numpy.typing as npt

def select_isa(isa: int) -> int: ...
def isa() -> int: ...
def stencil(
    coef: npt.NDArray[np.float32],
    xpad: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    nb: int,
    h: int,
    w: int,
    k: int,
    mp: int,
    opad: int,
    threads: int,
) -> int: ...
def stencil_power(
    coef: npt.NDArray[np.float32],
    buf0: npt.NDArray[np.float32],
    buf1: npt.NDArray[np.float32],
    nb: int,
    h: int,
    w: int,
    k: int,
    mp: int,
    n: int,
    threads: int,
) -> int: ...
