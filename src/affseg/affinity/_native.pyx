# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The compiled stencil kernel (``_stencil.c``), called without the GIL.

Private: :mod:`affseg.affinity.native` checks the arguments and is the public interface.
"""

cdef extern from "_stencil.h" nogil:
    int affseg_stencil_select(int isa)
    int affseg_stencil_isa()
    int affseg_stencil(const float *coef, const float *xpad, float *out, int nb, int h, int w,
                       int k, int mp, int opad, int nthreads)
    int affseg_stencil_power(const float *coef, float *buf0, float *buf1, int nb, int h,
                             int w, int k, int mp, int n, int nthreads)


def select_isa(int isa):
    """Choose the kernel variant (0 baseline, 1 AVX2 + FMA, 2 AVX-512VL, -1 the best the
    CPU runs); returns the variant chosen."""
    return affseg_stencil_select(isa)


def isa():
    """The kernel variant in use (0 baseline, 1 AVX2 + FMA, 2 AVX-512VL)."""
    return affseg_stencil_isa()


def stencil(const float[:, :, :, ::1] coef, const float[:, :, :, ::1] xpad,
            float[:, :, :, ::1] out, int nb, int h, int w, int k, int mp, int opad,
            int threads):
    """``out = A x`` (see ``_stencil.c``); returns the kernel's code (0: done)."""
    cdef int code
    if coef.size == 0 or xpad.size == 0 or out.size == 0:
        return -1
    with nogil:
        code = affseg_stencil(&coef[0, 0, 0, 0], &xpad[0, 0, 0, 0], &out[0, 0, 0, 0],
                              nb, h, w, k, mp, opad, threads)
    return code


def stencil_power(const float[:, :, :, ::1] coef, float[:, :, :, ::1] buf0,
                  float[:, :, :, ::1] buf1, int nb, int h, int w, int k, int mp, int n,
                  int threads):
    """``A^n x`` ping-ponging between two padded buffers; returns the kernel's code."""
    cdef int code
    if coef.size == 0 or buf0.size == 0 or buf1.size == 0:
        return -1
    with nogil:
        code = affseg_stencil_power(&coef[0, 0, 0, 0], &buf0[0, 0, 0, 0], &buf1[0, 0, 0, 0],
                                    nb, h, w, k, mp, n, threads)
    return code
