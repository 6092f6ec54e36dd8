/* The stencil kernel of _stencil.c (see there), called by the extension _native.pyx. */
#ifndef AFFSEG_STENCIL_H
#define AFFSEG_STENCIL_H
int affseg_stencil_select(int isa);
int affseg_stencil_isa(void);
int affseg_stencil(const float *coef, const float *xpad, float *out, int nb, int h, int w,
                   int k, int mp, int opad, int nthreads);
int affseg_stencil_power(const float *coef, float *buf0, float *buf1, int nb, int h, int w,
                         int k, int mp, int n, int nthreads);
#endif
