# Stubs of the compiled grouping kernels (_kernels.pyx); the documented wrappers are in
# affseg.grouping.leaf_kernels, affseg.grouping.compact_watershed and
# affseg.grouping.kernel_grouping.
import numpy as np
import numpy.typing as npt

_I64 = npt.NDArray[np.int64]
_F64 = npt.NDArray[np.float64]
_Real = npt.NDArray[np.float32] | npt.NDArray[np.float64]

def sobel_magnitude(img: _F64) -> _F64: ...
def node_weights_csr(
    leaf: _I64,
    s: int,
    n_nodes: int,
    y0: _I64,
    y1: _I64,
    fy: _F64,
    x0: _I64,
    x1: _I64,
    fx: _F64,
    w: int,
) -> tuple[_I64, _I64, _F64]: ...
def rows_times_dense(indptr: _I64, indices: _I64, data: _F64, k: _Real) -> _F64: ...
def gram_rows(indptr: _I64, indices: _I64, data: _F64, km: _F64) -> _F64: ...
def gram_of_kernel(indptr: _I64, indices: _I64, data: _F64, k: _Real) -> _F64: ...
def merge_dense(
    s: int,
    mass: _F64,
    eu: _I64,
    ev: _I64,
    blen: _F64,
    bcon: _F64,
    bkl: _F64,
    sums: _F64,
    mode: int,
    w: float,
    small: float,
    mix: float,
) -> tuple[_I64, _F64]: ...
def tree_ucm(leaf: _I64, merges: _I64, hts: _F64, s: int) -> _F64: ...
def level_luts(merges: _I64, steps: _I64, s: int) -> npt.NDArray[np.int32]: ...
def flood(
    image: _F64,
    markers_at: _I64,
    offsets: _I64,
    mask: npt.NDArray[np.uint8],
    width: int,
    compactness: float,
    output: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    tied: npt.NDArray[np.uint8],
) -> None: ...
def exponent_in_place(
    g: npt.NDArray[np.float32], sq: npt.NDArray[np.float32], tau: float, floor: float
) -> None: ...
def merge_levels(
    u: _F64,
    lab0: npt.NDArray[np.int32] | _I64,
    n0: int,
    keep: _I64,
    thresholds: _F64,
) -> tuple[_I64, _I64]: ...
def kwik_core(
    emb: npt.NDArray[np.float32], order: _I64, threshold: float
) -> npt.NDArray[np.int32]: ...
