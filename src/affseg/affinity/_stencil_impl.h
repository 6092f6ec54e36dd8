/* The register-blocked stencil kernel of _stencil.c, included once per instruction set
 * (the including file defines STENCIL_NAME(name) to add the variant's suffix, and the
 * block size follows the instruction set the including pragma enables). */
/* Block: PB pixels x VB vectors of accumulators. 5 x 3 = 15 needs the 32 vector registers
 * of AVX-512VL (25 % faster than 4 x 2 on a Zen 4 core); 4 x 2 fits the 16 of AVX2. */

#undef PB
#undef VB
#if defined(__AVX512VL__)
#define PB 5
#define VB 3
#elif defined(__AVX__)
#define PB 4
#define VB 2
#else
/* the portable baseline (x86-64: 16 SSE registers, a v8 takes two): 3 x 1, measured
 * fastest of 1..4 x 1..2 */
#ifndef BASE_PB
#define BASE_PB 3
#define BASE_VB 1
#endif
#define PB BASE_PB
#define VB BASE_VB
#endif

static inline __attribute__((always_inline)) void
STENCIL_NAME(block)(const float *restrict coef, const float *restrict xpad, float *restrict out,
      int w, int k, int mp, int opad, int y, int x0, int j0, const int P, const int V)
{
    const int kk = k * k;
    const int wp = w + k - 1;
    v8 a[PB][VB];
#pragma GCC unroll 8
    for (int p = 0; p < PB; p++)
#pragma GCC unroll 4
        for (int v = 0; v < VB; v++) a[p][v] = (v8){0};
    const float *cb = coef + ((size_t)y * w + x0) * kk;
    for (int dy = 0; dy < k; dy++) {
        const float *xr = xpad + ((size_t)(y + dy) * wp + x0) * mp + j0;
        const float *c = cb + (size_t)dy * k;
        /* head: neighbour columns 0 .. P-2 serve pixels p <= d */
#pragma GCC unroll 8
        for (int d = 0; d < P - 1; d++) {
            v8 xv[VB];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) xv[v] = LOADV(xr + (size_t)d * mp + 8 * v);
#pragma GCC unroll 8
            for (int p = 0; p <= d; p++) {
                float cv = c[(size_t)p * kk + d - p];
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) a[p][v] += cv * xv[v];
            }
        }
        /* body: every pixel of the block */
        for (int d = P - 1; d < k; d++) {
            v8 xv[VB];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) xv[v] = LOADV(xr + (size_t)d * mp + 8 * v);
#pragma GCC unroll 8
            for (int p = 0; p < P; p++) {
                float cv = c[(size_t)p * kk + d - p];
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) a[p][v] += cv * xv[v];
            }
        }
        /* tail: neighbour columns k .. k+P-2 serve pixels p > d - k */
#pragma GCC unroll 8
        for (int d = k; d < k + P - 1; d++) {
            v8 xv[VB];
#pragma GCC unroll 4
            for (int v = 0; v < V; v++) xv[v] = LOADV(xr + (size_t)d * mp + 8 * v);
#pragma GCC unroll 8
            for (int p = d - k + 1; p < P; p++) {
                float cv = c[(size_t)p * kk + d - p];
#pragma GCC unroll 4
                for (int v = 0; v < V; v++) a[p][v] += cv * xv[v];
            }
        }
    }
#pragma GCC unroll 8
    for (int p = 0; p < P; p++) {
        float *o = out + ((size_t)(y + opad) * (w + 2 * opad) + opad + x0 + p) * mp + j0;
#pragma GCC unroll 4
        for (int v = 0; v < V; v++) *(v8 *)(o + 8 * v) = a[p][v];
    }
}

/* Rows t0 .. t1-1 of the flattened (batch, row) range [0, nb * h). Returns 0, or -1 when the
 * arguments are outside what the kernel handles (the caller checks them first). */
static int STENCIL_NAME(affseg_stencil_rows)(const float *coef, const float *xpad, float *out,
                        int h, int w, int k, int mp, int opad, long t0, long t1)
{
    /* the head / body / tail split of a block needs k >= PB - 1 */
    if (k < PB - 1 || (k & 1) == 0 || mp % 8 != 0 || h < 1 || w < 1) return -1;
    if (opad != 0 && opad != k / 2) return -1;
    const size_t kk = (size_t)k * k;
    const size_t hp = (size_t)h + k - 1, wp = (size_t)w + k - 1;
    FTZ_ENTER
    for (long t = t0; t < t1; t++) {
        const long b = t / h;
        const int y = (int)(t - b * h);
        const float *cb = coef + (size_t)b * h * w * kk;
        const float *xb = xpad + (size_t)b * hp * wp * mp;
        float *ob = out + (size_t)b * (h + 2 * opad) * (w + 2 * opad) * mp;
        int x0 = 0;
        for (; x0 + PB <= w; x0 += PB) {
            int j0 = 0;
            for (; j0 + 8 * VB <= mp; j0 += 8 * VB) STENCIL_NAME(block)(cb, xb, ob, w, k, mp, opad, y, x0, j0, PB, VB);
            for (; j0 < mp; j0 += 8) STENCIL_NAME(block)(cb, xb, ob, w, k, mp, opad, y, x0, j0, PB, 1);
        }
        for (; x0 < w; x0++) {
            int j0 = 0;
            for (; j0 + 8 * VB <= mp; j0 += 8 * VB) STENCIL_NAME(block)(cb, xb, ob, w, k, mp, opad, y, x0, j0, 1, VB);
            for (; j0 < mp; j0 += 8) STENCIL_NAME(block)(cb, xb, ob, w, k, mp, opad, y, x0, j0, 1, 1);
        }
    }
    FTZ_LEAVE
    return 0;
}

