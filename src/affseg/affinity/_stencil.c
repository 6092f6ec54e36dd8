/* Register-blocked k x k stencil on channels-last float32 vectors (affseg.affinity.native).
 *
 *   out[b, y, x, :] = sum_{dy, dx} coef[b, y, x, dy * k + dx] * xpad[b, y + dy, x + dx, :]
 *
 * coef (B, h, w, k*k), xpad (B, h + k - 1, w + k - 1, mp), out (B, h, w, mp), all
 * C-contiguous, mp a multiple of 8, odd k >= 5. With opad = k / 2, out is padded like xpad and
 * only its interior is written (so repeated applications can ping-pong between two padded
 * buffers without copies). Each block keeps PB x VB accumulators of 8 floats
 * (PB horizontally adjacent pixels x 8 * VB channels) in registers over all k * k taps: a
 * loaded neighbour vector serves PB pixels and a broadcast coefficient serves VB vectors.
 * Compiled at first use with the host's compiler (-O3 -march=native) and cached; the numba
 * kernel in graph.py is the fallback and the reference the tests compare against.
 */
#include <stddef.h>

/* Flush-to-zero / denormals-are-zero only while the kernel runs, on the calling thread, and
 * restored on return: the library is linked without -ffast-math's crtfastmath.o, so loading
 * it leaves the process's floating-point state alone. */
#if defined(__SSE__)
#include <xmmintrin.h>
#define FTZ_ENTER const unsigned int affseg_csr_ = _mm_getcsr(); _mm_setcsr(affseg_csr_ | 0x8040u);
#define FTZ_LEAVE _mm_setcsr(affseg_csr_);
#else
#define FTZ_ENTER
#define FTZ_LEAVE
#endif

typedef float v8 __attribute__((vector_size(32), aligned(4)));

/* Block: PB pixels x VB vectors of accumulators. 5 x 3 = 15 needs the 32 vector registers
 * of AVX-512VL (25 % faster than 4 x 2 on a Zen 4 core); 4 x 2 fits the 16 of AVX2. */
#if defined(__AVX512VL__)
#define PB 5
#define VB 3
#else
#define PB 4
#define VB 2
#endif
#define LOADV(p) (*(const v8 *)(p))

static inline __attribute__((always_inline)) void
block(const float *restrict coef, const float *restrict xpad, float *restrict out,
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
int affseg_stencil_rows(const float *coef, const float *xpad, float *out,
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
            for (; j0 + 8 * VB <= mp; j0 += 8 * VB) block(cb, xb, ob, w, k, mp, opad, y, x0, j0, PB, VB);
            for (; j0 < mp; j0 += 8) block(cb, xb, ob, w, k, mp, opad, y, x0, j0, PB, 1);
        }
        for (; x0 < w; x0++) {
            int j0 = 0;
            for (; j0 + 8 * VB <= mp; j0 += 8 * VB) block(cb, xb, ob, w, k, mp, opad, y, x0, j0, 1, VB);
            for (; j0 < mp; j0 += 8) block(cb, xb, ob, w, k, mp, opad, y, x0, j0, 1, 1);
        }
    }
    FTZ_LEAVE
    return 0;
}

/* ---- threading: OpenMP. Loaded into a process that has imported torch, the library binds
 * to the libgomp.so.1 torch already loaded (same soname), so the kernel runs on torch's own
 * OpenMP team (torch.set_num_threads applies) instead of competing with its threads. ---- */

/* out = A x for the whole (nb, h) row range. Returns 0, or -1 on bad arguments. */
int affseg_stencil(const float *coef, const float *xpad, float *out,
                   int nb, int h, int w, int k, int mp, int opad, int nthreads)
{
    const long rows = (long)nb * h;
    int code = 0;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1) \
    reduction(| : code)
    for (long t = 0; t < rows; t++)
        code |= affseg_stencil_rows(coef, xpad, out, h, w, k, mp, opad, t, t + 1);
    return code;
}

/* A^n x: buf0 holds x padded by k / 2 zero pixels (B, h + k - 1, w + k - 1, mp), buf1 a
 * zeroed buffer of the same shape; the n applications ping-pong between them inside one
 * parallel region and the result is in buf[n % 2]. Returns 0, or -1 on bad arguments. */
int affseg_stencil_power(const float *coef, float *buf0, float *buf1,
                         int nb, int h, int w, int k, int mp, int n, int nthreads)
{
    const long rows = (long)nb * h;
    float *buf[2] = {buf0, buf1};
    int code = 0;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(| : code)
    for (int i = 0; i < n; i++) {
#pragma omp for schedule(static)
        for (long t = 0; t < rows; t++)
            code |= affseg_stencil_rows(coef, buf[i & 1], buf[(i + 1) & 1], h, w, k, mp, k / 2,
                                        t, t + 1);
        /* the implicit barrier of omp for: application i is complete everywhere */
    }
    return code;
}
