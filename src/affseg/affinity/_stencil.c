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
 *
 * Built with the package (the extension affseg.affinity._native) for a portable baseline
 * (x86-64: SSE2) and, on x86-64 with GCC or Clang, also for AVX2 + FMA and AVX-512VL; the
 * variant is picked once at run time from the CPU (runtime dispatch, __builtin_cpu_supports),
 * or forced with affseg_stencil_select.
 */
#include <stddef.h>
#include "_stencil.h"

/* Flush-to-zero / denormals-are-zero only while the kernel runs, on the calling thread, and
 * restored on return: the process's floating-point state is left alone. */
#if defined(__SSE__)
#include <xmmintrin.h>
#define FTZ_ENTER const unsigned int affseg_csr_ = _mm_getcsr(); _mm_setcsr(affseg_csr_ | 0x8040u);
#define FTZ_LEAVE _mm_setcsr(affseg_csr_);
#else
#define FTZ_ENTER
#define FTZ_LEAVE
#endif

typedef float v8 __attribute__((vector_size(32), aligned(4)));
#define LOADV(p) (*(const v8 *)(p))

typedef int (*rows_fn)(const float *, const float *, float *, int, int, int, int, int, long,
                       long);

/* the portable baseline */
#define STENCIL_NAME(name) name##_base
#include "_stencil_impl.h"
#undef STENCIL_NAME

#if defined(__x86_64__) && defined(__GNUC__) && !defined(AFFSEG_NO_DISPATCH)
#define AFFSEG_DISPATCH 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define STENCIL_NAME(name) name##_avx2
#include "_stencil_impl.h"
#undef STENCIL_NAME
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx2,fma")
#define STENCIL_NAME(name) name##_avx512
#include "_stencil_impl.h"
#undef STENCIL_NAME
#pragma GCC pop_options
#endif

static rows_fn selected = 0;
static int selected_isa = -1;

/* Choose the variant: isa 0 baseline, 1 AVX2 + FMA, 2 AVX-512VL, -1 the best the CPU runs.
 * A variant the CPU (or the build) lacks falls back to the next lower one. Returns the
 * variant chosen. */
int affseg_stencil_select(int isa)
{
    int best = 0;
#ifdef AFFSEG_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = 1;
    if (best == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
        best = 2;
#endif
    if (isa < 0 || isa > best) isa = best;
    switch (isa) {
#ifdef AFFSEG_DISPATCH
    case 2: selected = affseg_stencil_rows_avx512; break;
    case 1: selected = affseg_stencil_rows_avx2; break;
#endif
    default: selected = affseg_stencil_rows_base; isa = 0; break;
    }
    selected_isa = isa;
    return isa;
}

int affseg_stencil_isa(void)
{
    if (!selected) affseg_stencil_select(-1);
    return selected_isa;
}

/* ---- threading: OpenMP. Imported into a process that has loaded torch, the extension
 * binds to the libgomp.so.1 torch already loaded (same soname), so the kernel runs on
 * torch's own OpenMP team instead of competing with its threads. ---- */

/* out = A x for the whole (nb, h) row range. Returns 0, or -1 on bad arguments. */
int affseg_stencil(const float *coef, const float *xpad, float *out,
                   int nb, int h, int w, int k, int mp, int opad, int nthreads)
{
    const long rows = (long)nb * h;
    int code = 0;
    if (!selected) affseg_stencil_select(-1);
    const rows_fn fn = selected;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1) \
    reduction(| : code)
    for (long t = 0; t < rows; t++)
        code |= fn(coef, xpad, out, h, w, k, mp, opad, t, t + 1);
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
    if (!selected) affseg_stencil_select(-1);
    const rows_fn fn = selected;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1) reduction(| : code)
    for (int i = 0; i < n; i++) {
#pragma omp for schedule(static)
        for (long t = 0; t < rows; t++)
            code |= fn(coef, buf[i & 1], buf[(i + 1) & 1], h, w, k, mp, k / 2, t, t + 1);
        /* the implicit barrier of omp for: application i is complete everywhere */
    }
    return code;
}
