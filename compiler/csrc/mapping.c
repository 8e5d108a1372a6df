// qtc: the Quantum-Train generator's tail on the CPU, from the ensemble's probabilities P to the
// target weights, for the linear mapping (runtime/mapping.py; the same function in torch ops:
// runtime/generator.py QTGenerator._rescaled and _generated):
//   x'_i  = max(beta tanh(scale max(P_i, 0)), 1e-30)^alpha      (rescale "qt"; else x'_i = P_i)
//   x_i   = x'_i - mean(x')                                     (rescale "qt" only)
//   o_i   = factor (b + x_i w[nb] + sum_k bits[k, i] w[k])       (bits: nb rows of count)
//   out_i = o_i - mean(o)                                       (center; else out_i = o_i)
// for i < count, and in the backward the gradients of sum_i gout_i out_i in P (the first count
// entries), w (nb + 1) and b. One pass each way instead of some twenty torch ops and their
// autograd nodes (an A3C update runs two generators: docs/results/speed.md). `real` is typedef'd
// by the runtime (float or double: the generator's dtype); sums are accumulated in double, so the
// results equal torch's to rounding, not bit for bit. Built with -fno-math-errno: tanh and pow
// run on glibc's vector functions (libmvec; tanh since glibc 2.35). NaN propagates as in torch
// (no -ffinite-math-only): the comparisons below let a NaN through where torch's clamps do.
#include <math.h>
#define QTC_RESTRICT __restrict__   // the name runtime/launch.py's signature reader knows

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#pragma omp declare simd notinbranch
extern "C" float tanhf(float);
#pragma omp declare simd notinbranch
extern "C" double tanh(double);
#endif
#if defined(__GLIBC__)
#pragma omp declare simd notinbranch
extern "C" float powf(float, float);
#pragma omp declare simd notinbranch
extern "C" double pow(double, double);
#endif

static inline float qtc_tanh(float v) { return tanhf(v); }
static inline double qtc_tanh(double v) { return tanh(v); }
static inline float qtc_pow(float v, float e) { return powf(v, e); }
static inline double qtc_pow(double v, double e) { return pow(v, e); }

static double qtc_sum(const real* QTC_RESTRICT v, long count) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (long i = 0; i < count; ++i) s += v[i];
  return s;
}

static double qtc_mean(const real* QTC_RESTRICT v, long count) { return count ? qtc_sum(v, count) / count : 0.0; }

static double qtc_dot(const real* QTC_RESTRICT a, const real* QTC_RESTRICT b, long count) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (long i = 0; i < count; ++i) s += (double)a[i] * b[i];
  return s;
}

// xr: x' (saved for the backward), x: x' centred (rescale "qt") or P itself, t: tanh(...)
// (saved), out: the weights. `rescale`, `center`: 1 or 0.
extern "C" void qtc_map_forward(long count, long nb, int rescale, int center, real scale, real beta, real alpha,
                                real factor, const real* QTC_RESTRICT P, const real* QTC_RESTRICT bits,
                                const real* QTC_RESTRICT w, const real* QTC_RESTRICT b, real* QTC_RESTRICT xr,
                                real* QTC_RESTRICT x, real* QTC_RESTRICT t, real* QTC_RESTRICT out) {
  if (rescale) {
    const real tiny = (real)1e-30;
#pragma omp simd
    for (long i = 0; i < count; ++i) {
      const real u = P[i] < 0 ? (real)0 : P[i];
      const real th = qtc_tanh(scale * u);
      const real y = beta * th;
      t[i] = th;
      xr[i] = qtc_pow(y < tiny ? tiny : y, alpha);
    }
    const real m = (real)qtc_mean(xr, count);
#pragma omp simd
    for (long i = 0; i < count; ++i) x[i] = xr[i] - m;
  } else {
    for (long i = 0; i < count; ++i) x[i] = P[i];
  }
  const real wx = w[nb], b0 = b[0];
#pragma omp simd
  for (long i = 0; i < count; ++i) out[i] = b0 + x[i] * wx;
  for (long k = 0; k < nb; ++k) {
    const real* QTC_RESTRICT col = bits + k * count;
    const real wk = w[k];
#pragma omp simd
    for (long i = 0; i < count; ++i) out[i] += col[i] * wk;
  }
  if (factor != (real)1)
    for (long i = 0; i < count; ++i) out[i] *= factor;
  if (center) {
    const real m = (real)qtc_mean(out, count);
#pragma omp simd
    for (long i = 0; i < count; ++i) out[i] -= m;
  }
}

// gP: the first `count` entries (the caller zeroes the rest), gw (nb + 1), gb (1): written, not
// added to. go: the gradient of out; x, xr, t: the forward's.
extern "C" void qtc_map_backward(long count, long nb, int rescale, int center, real scale, real beta, real alpha,
                                 real factor, const real* QTC_RESTRICT go, const real* QTC_RESTRICT bits,
                                 const real* QTC_RESTRICT w, const real* QTC_RESTRICT xr,
                                 const real* QTC_RESTRICT x, const real* QTC_RESTRICT t, real* QTC_RESTRICT gP,
                                 real* QTC_RESTRICT gw, real* QTC_RESTRICT gb) {
  const real mg = center ? (real)qtc_mean(go, count) : (real)0;
  real* QTC_RESTRICT g = gP;                 // the gradient of o, then of P, in place
#pragma omp simd
  for (long i = 0; i < count; ++i) g[i] = factor * (go[i] - mg);
  for (long k = 0; k < nb; ++k) gw[k] = (real)qtc_dot(bits + k * count, g, count);
  gw[nb] = (real)qtc_dot(x, g, count);
  gb[0] = (real)qtc_sum(g, count);
  const real wx = w[nb];
#pragma omp simd
  for (long i = 0; i < count; ++i) g[i] *= wx;   // the gradient of x
  if (!rescale) return;
  const real m = (real)qtc_mean(g, count), tiny = (real)1e-30;
#pragma omp simd
  for (long i = 0; i < count; ++i) {
    const real y = beta * t[i];
    // d x'/d y = alpha y^(alpha - 1) = alpha x' / y where y was not clamped (else 0); d y / d P
    // = beta scale (1 - t^2) where P > 0 (where P <= 0, t = 0 and y was clamped)
    gP[i] = y >= tiny ? (g[i] - m) * alpha * xr[i] / y * beta * scale * ((real)1 - t[i] * t[i]) : (real)0;
  }
}
