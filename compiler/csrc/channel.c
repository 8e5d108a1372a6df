// qtc channel-form kernels: the passes of a density matrix through a chain of mixed-unitary maps
// (derivation: compiler/factorised.py). One source for CUDA (NVRTC) and C++ (g++ -fopenmp): each
// QTC_KERNEL is one flat loop over independent elements; the driver that orders them, forward
// and adjoint backward, is shared by both (runtime/channel_kernels.py).
//
// Layout: a density matrix rho of n qubits is 2 * D reals (D = 4^n), the real plane then the
// imaginary plane; entry (r, c) sits at x = (r << n) | c, so row qubit q is bit n + q of x and
// column qubit q is bit q. U rho U^dagger = U on the row bits and conj(U) on the column bits,
// both in the same pass. Every pass writes out = alpha * f(input) + beta * out (beta 0: out is not
// read), so a mixture accumulates its alternatives without a copy of rho per alternative.
// A 2x2 matrix m is given as interleaved (re, im) pairs, row-major: m[a][b] at 2 * (2 a + b).
typedef double real;
#ifdef __CUDACC__
#define QTC_KERNEL extern "C" __global__ void
#define QTC_FOR(i, count) \
  for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (long)(count); \
       i += (long)gridDim.x * blockDim.x)
#else
#include <omp.h>
#define QTC_KERNEL extern "C" void
#define QTC_FOR(i, count) _Pragma("omp parallel for schedule(static)") \
  for (long i = 0; i < (long)(count); ++i)
QTC_KERNEL qtc_ch_threads(int k) { omp_set_num_threads(k > 0 ? k : 1); }
#endif

// x with a zero bit inserted at position b (the quad base of loop index i)
#define QTC_INSERT0(i, b) ((((i) >> (b)) << ((b) + 1)) | ((i) & ((1L << (b)) - 1)))
// the four entries of a quad: (row bit a, column bit b) at index 2 a + b
#define QTC_QUAD(x, i, n, q) \
  const long x##0 = QTC_INSERT0(QTC_INSERT0(i, q), (n) + (q)), x##1 = x##0 | (1L << (q)), \
             x##2 = x##0 | (1L << ((n) + (q))), x##3 = x##2 | (1L << (q)); \
  const long x[4] = {x##0, x##1, x##2, x##3}
#define QTC_STORE(out, D, x, k, re, im, alpha, beta) do { \
    if (beta == 0) { out[x[k]] = alpha * (re); out[D + x[k]] = alpha * (im); } \
    else { out[x[k]] = alpha * (re) + beta * out[x[k]]; \
           out[D + x[k]] = alpha * (im) + beta * out[D + x[k]]; } } while (0)

// A one-qubit gate m on qubit q, both sides: out[a, b] = sum m[a, a'] conj(m[b, b']) input[a', b'].
// The matrix is read into registers once (input and out may be the same array, so the compiler
// could not keep m in registers across the stores otherwise).
QTC_KERNEL qtc_ch_dense(const real* input, real* out, long D, int n, int q, const real* m,
                        real alpha, real beta) {
  const real ar0 = m[0], ai0 = m[1], ar1 = m[2], ai1 = m[3];   // row 0: m[0][0], m[0][1]
  const real br0 = m[4], bi0 = m[5], br1 = m[6], bi1 = m[7];   // row 1: m[1][0], m[1][1]
  QTC_FOR(i, D / 4) {
    QTC_QUAD(x, i, n, q);
    const real v0r = input[x0], v0i = input[D + x0], v1r = input[x1], v1i = input[D + x1];
    const real v2r = input[x2], v2i = input[D + x2], v3r = input[x3], v3i = input[D + x3];
    // rows: t[a, b] = m[a][0] v[0, b] + m[a][1] v[1, b]  (v[a', b] at index 2 a' + b)
    const real t0r = ar0 * v0r - ai0 * v0i + ar1 * v2r - ai1 * v2i, t0i = ar0 * v0i + ai0 * v0r + ar1 * v2i + ai1 * v2r;
    const real t1r = ar0 * v1r - ai0 * v1i + ar1 * v3r - ai1 * v3i, t1i = ar0 * v1i + ai0 * v1r + ar1 * v3i + ai1 * v3r;
    const real t2r = br0 * v0r - bi0 * v0i + br1 * v2r - bi1 * v2i, t2i = br0 * v0i + bi0 * v0r + br1 * v2i + bi1 * v2r;
    const real t3r = br0 * v1r - bi0 * v1i + br1 * v3r - bi1 * v3i, t3i = br0 * v1i + bi0 * v1r + br1 * v3i + bi1 * v3r;
    // columns: o[a, b] = conj(m[b][0]) t[a, 0] + conj(m[b][1]) t[a, 1]
    QTC_STORE(out, D, x, 0, ar0 * t0r + ai0 * t0i + ar1 * t1r + ai1 * t1i, ar0 * t0i - ai0 * t0r + ar1 * t1i - ai1 * t1r, alpha, beta);
    QTC_STORE(out, D, x, 1, br0 * t0r + bi0 * t0i + br1 * t1r + bi1 * t1i, br0 * t0i - bi0 * t0r + br1 * t1i - bi1 * t1r, alpha, beta);
    QTC_STORE(out, D, x, 2, ar0 * t2r + ai0 * t2i + ar1 * t3r + ai1 * t3i, ar0 * t2i - ai0 * t2r + ar1 * t3i - ai1 * t3r, alpha, beta);
    QTC_STORE(out, D, x, 3, br0 * t2r + bi0 * t2i + br1 * t3r + bi1 * t3i, br0 * t2i - bi0 * t2r + br1 * t3i - bi1 * t3r, alpha, beta);
  }
}

// The same for a real m (H, RY): the real and imaginary planes each see the real map m (x) m.
QTC_KERNEL qtc_ch_dense_real(const real* input, real* out, long D, int n, int q, const real* m,
                             real alpha, real beta) {
  const real m00 = m[0], m01 = m[2], m10 = m[4], m11 = m[6];
  QTC_FOR(i, D / 4) {
    QTC_QUAD(x, i, n, q);
    real v[2][4];
    for (int k = 0; k < 4; ++k) { v[0][k] = input[x[k]]; v[1][k] = input[D + x[k]]; }
    real o[2][4];
    for (int p = 0; p < 2; ++p) {
      const real t0 = m00 * v[p][0] + m01 * v[p][2], t1 = m00 * v[p][1] + m01 * v[p][3];
      const real t2 = m10 * v[p][0] + m11 * v[p][2], t3 = m10 * v[p][1] + m11 * v[p][3];
      o[p][0] = m00 * t0 + m01 * t1; o[p][1] = m10 * t0 + m11 * t1;
      o[p][2] = m00 * t2 + m01 * t3; o[p][3] = m10 * t2 + m11 * t3;
    }
    for (int k = 0; k < 4; ++k) QTC_STORE(out, D, x, k, o[0][k], o[1][k], alpha, beta);
  }
}

// A run of monomial gates M = diag(e) P (CNOTs, CZ, X, SWAP, RZ, ...) on both sides, as one
// gather: out[r, c] = alpha * e[r] conj(e[c]) input[t[r], t[c]] + beta * out[r, c], t: an index
// table over 2^n basis states, e: interleaved complex phases (phased 0: all ones, not read).
// input and out must not overlap.
QTC_KERNEL qtc_ch_gather(const real* input, real* out, long D, int n, const int* t, const real* e,
                         int phased, real alpha, real beta) {
  const long mask = (1L << n) - 1;
  QTC_FOR(x, D) {
    const long r = x >> n, c = x & mask, src = ((long)t[r] << n) | t[c];
    real re = input[src], im = input[D + src];
    if (phased) {      // e[r] conj(e[c]) (re + i im)
      const real pr = e[2 * r] * e[2 * c] + e[2 * r + 1] * e[2 * c + 1];
      const real pi = e[2 * r + 1] * e[2 * c] - e[2 * r] * e[2 * c + 1];
      const real a = pr * re - pi * im;
      im = pr * im + pi * re;
      re = a;
    }
    if (beta == 0) { out[x] = alpha * re; out[D + x] = alpha * im; }
    else { out[x] = alpha * re + beta * out[x]; out[D + x] = alpha * im + beta * out[D + x]; }
  }
}

// Traces for gradients, for Hermitian F, S (S[j^f, i] = conj S[i, j^f]): term t writes row i's
// share of Tr(F P S) to out[slot[t] * 2^n + i], P = the Pauli axis[t] on qubit qubit[t]; axis 0
// (P = 1): the real part; axis 1, 2, 3 (X, Y, Z): the imaginary part. Each thread walks one row
// of F and S per term: the row stays in cache, so F and S are read from memory about once.
QTC_KERNEL qtc_ch_traces(const real* F, const real* S, real* out, int n, const int* axis,
                         const int* qubit, const int* slot, int terms) {
  const long dim = 1L << n, D = dim * dim;
  QTC_FOR(i, dim) {
    for (int t = 0; t < terms; ++t) {
      const int ax = axis[t], q = qubit[t];
      const long f = (ax == 1 || ax == 2) ? 1L << q : 0;
      real acc = 0;
      for (long j = 0; j < dim; ++j) {
        const long a = i * dim + j, b = i * dim + (j ^ f);
        const real re = F[a] * S[b] + F[D + a] * S[D + b];      // F[i,j] conj(S[i, j^f])
        const real imag = F[D + a] * S[b] - F[a] * S[D + b];
        const int bit = (int)((j >> q) & 1);
        if (ax == 0) acc += re;
        else if (ax == 1) acc += imag;
        else if (ax == 2) acc += bit ? re : -re;                // p(j) = -i (bit 0) or +i (bit 1)
        else acc += bit ? -imag : imag;                         // p(j) = +1 (bit 0) or -1 (bit 1)
      }
      out[slot[t] * dim + i] = acc;
    }
  }
}
