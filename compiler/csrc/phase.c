// qtc phase-form circuits on the CPU (qtc/compiler/csrc/phase.c; the math: compiler.ir.PhaseForm,
// compiler.passes.hadamard_phase_form). A node's state is psi = W exp(i f) / 2^n with
// f = W F, F[b_k] += a_k theta[i_k] + c_k, W the unnormalised Walsh-Hadamard transform of the
// 2^n entries. Everything is computed in double whatever the program's dtype (the runtime
// converts at the edges); one node per call, on the calling thread. The text depends on no
// program: runtime/phase.py builds it once per machine. Built with -ffast-math so that the
// cos / sin loop runs on glibc's vector functions (libmvec, a few ulp); nothing here relies on
// an order of additions or on NaN checks.
#include <math.h>
#include <string.h>

// W in place, on vectors of QTC_PW doubles (GCC vector extensions: AVX-512 registers where the
// machine has them, split by the compiler where it has not). The transform is a product of one
// butterfly stage per bit of the index, in any order: the bits inside a vector are butterflies
// between lanes (a shuffle and a fused multiply-add each), the others between whole vectors,
// three bits per sweep over the data (radix 8). The low bits are done block by block (each block
// stays in L1), the high ones by sweeps over the whole array.
#define QTC_PW 8
typedef double qpv __attribute__((vector_size(8 * QTC_PW)));
typedef long qpi __attribute__((vector_size(8 * QTC_PW)));
#define QTC_WHT_BLOCK 256L   // vectors (16 KB)

// y_j = x_(j ^ h) + s_j x_j, s_j = -1 where bit h of j is set: the butterfly of lane bit h
static inline qpv qtc_lane_stage(qpv x, qpi swap, qpv sign) { return __builtin_shuffle(x, swap) + sign * x; }

static inline void qtc_lanes(qpv* __restrict__ v, long count) {
  const qpi s1 = {1, 0, 3, 2, 5, 4, 7, 6}, s2 = {2, 3, 0, 1, 6, 7, 4, 5}, s4 = {4, 5, 6, 7, 0, 1, 2, 3};
  const qpv m1 = {1, -1, 1, -1, 1, -1, 1, -1}, m2 = {1, 1, -1, -1, 1, 1, -1, -1},
            m4 = {1, 1, 1, 1, -1, -1, -1, -1};
  for (long i = 0; i < count; ++i)
    v[i] = qtc_lane_stage(qtc_lane_stage(qtc_lane_stage(v[i], s1, m1), s2, m2), s4, m4);
}

#define QTC_BFLY(a, b) { const qpv t = a; a = t + b; b = t - b; }
// the stages of vector strides h, 2h, 4h (r = 3), h, 2h (r = 2) or h (r = 1) over `count` vectors
template <int r>
static void qtc_radix(qpv* __restrict__ v, long count, long h) {
  for (long o = 0; o < count; o += h << r)
    for (long j = o; j < o + h; ++j) {
      qpv x[1 << r];
#pragma GCC unroll 8
      for (int k = 0; k < (1 << r); ++k) x[k] = v[j + k * h];
#pragma GCC unroll 4
      for (int s = 1; s < (1 << r); s <<= 1)
#pragma GCC unroll 8
        for (int k = 0; k < (1 << r); ++k)
          if (!(k & s)) QTC_BFLY(x[k], x[k | s])
#pragma GCC unroll 8
      for (int k = 0; k < (1 << r); ++k) v[j + k * h] = x[k];
    }
}

static void qtc_strides(qpv* v, long count, long h, long end) {   // strides h .. end / 2
  for (; h < end; h <<= 3) {
    const long left = end / h;
    if (left >= 8) qtc_radix<3>(v, count, h);
    else if (left >= 4) qtc_radix<2>(v, count, h);
    else qtc_radix<1>(v, count, h);
  }
}

static void qtc_wht(double* __restrict__ x, long N) {
  if (N < QTC_PW) {      // a handful of entries: one stage at a time
    for (long h = 1; h < N; h <<= 1)
      for (long i = 0; i < N; i += 2 * h)
        for (long j = i; j < i + h; ++j) {
          const double a = x[j], b = x[j + h];
          x[j] = a + b;
          x[j + h] = a - b;
        }
    return;
  }
  qpv* v = (qpv*)x;       // the caller's buffers are 64-byte aligned (torch allocates so)
  const long M = N / QTC_PW, B = M < QTC_WHT_BLOCK ? M : QTC_WHT_BLOCK;
  for (long o = 0; o < M; o += B) {
    qtc_lanes(v + o, B);
    qtc_strides(v + o, B, 1, B);
  }
  qtc_strides(v, M, B, M);
}

// The spectrum F of the phase (zeroed first).
static void qtc_spectrum(long N, int nterms, const long* mask, const int* idx, const double* a,
                         const double* c, const double* theta, double* F) {
  memset(F, 0, N * sizeof(double));
  for (int k = 0; k < nterms; ++k) F[mask[k]] += (idx[k] >= 0 ? a[k] * theta[idx[k]] : 0.0) + c[k];
}

// work (4 N doubles) <- [Re psi | Im psi | cos f | sin f]; p <- |psi|^2.
extern "C" void qtc_phase_forward(int n, int nterms, const long* mask, const int* idx, const double* a,
                                  const double* c, const double* theta, double* work, double* p) {
  const long N = 1L << n;
  double *re = work, *im = work + N, *cs = work + 2 * N, *sn = work + 3 * N;
  qtc_spectrum(N, nterms, mask, idx, a, c, theta, re);
  qtc_wht(re, N);                                     // f
#pragma omp simd
  for (long z = 0; z < N; ++z) {
    cs[z] = cos(re[z]);
    sn[z] = sin(re[z]);
  }
  const double inv = 1.0 / (double)N;
#pragma omp simd
  for (long z = 0; z < N; ++z) {
    re[z] = cs[z] * inv;
    im[z] = sn[z] * inv;
  }
  qtc_wht(re, N);
  qtc_wht(im, N);
#pragma omp simd
  for (long y = 0; y < N; ++y) p[y] = re[y] * re[y] + im[y] * im[y];
}

// The gradient of L = sum_y g_y p_y (times `weight`) added into gth, from the forward's work
// (left as it is; scratch: 2 N doubles). chi = W (g psi); dL/df = (2 / N) (cos f Im chi -
// sin f Re chi); dL/dF = W dL/df; dL/dtheta[i_k] += a_k dL/dF[b_k].
extern "C" void qtc_phase_backward(int n, int nterms, const long* mask, const int* idx, const double* a,
                                   const double* work, const double* g, double weight, double* scratch,
                                   double* gth) {
  const long N = 1L << n;
  const double *re = work, *im = work + N, *cs = work + 2 * N, *sn = work + 3 * N;
  double *xr = scratch, *xi = scratch + N;
#pragma omp simd
  for (long y = 0; y < N; ++y) {
    xr[y] = g[y] * re[y];
    xi[y] = g[y] * im[y];
  }
  qtc_wht(xr, N);
  qtc_wht(xi, N);
  const double s = 2.0 * weight / (double)N;
#pragma omp simd
  for (long z = 0; z < N; ++z) xr[z] = s * (cs[z] * xi[z] - sn[z] * xr[z]);
  qtc_wht(xr, N);
  for (int k = 0; k < nterms; ++k)
    if (idx[k] >= 0) gth[idx[k]] += a[k] * xr[mask[k]];
}
