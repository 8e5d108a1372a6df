// qtc channel-form kernels: a density matrix through a chain of mixed-unitary maps, forward and
// adjoint backward (derivation: compiler/factorised.py; driver: runtime/channel_kernels.py). One source for CUDA and C++
// (g++ -fopenmp), in the subset of qtc's generated kernels: each QTC_KERNEL is one flat loop.
//
// Layout: a density matrix rho of n qubits is 2 * 4^n reals, the real plane then the imaginary
// plane; entry (r, c) sits at x = (r << n) | c, so row qubit q is bit n + q of x and column
// qubit q is bit q. U rho U^dagger = U on the row bits, conj(U) on the column bits.
// A matrix m is given as interleaved (re, im) pairs, row-major, index = b0 + 2 b1.
typedef double real;
#ifdef __CUDACC__
#define QTC_KERNEL extern "C" __global__ void
#define QTC_FOR(i, count) \
  for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (long)(count); \
       i += (long)gridDim.x * blockDim.x)
#else
#include <omp.h>
#include <string.h>
#define QTC_KERNEL extern "C" void
#define QTC_FOR(i, count) _Pragma("omp parallel for schedule(static)") \
  for (long i = 0; i < (long)(count); ++i)
#endif

// x with a zero bit inserted at position b (the pair / quad base of loop index i)
#define QTC_INSERT0(i, b) ((((i) >> (b)) << ((b) + 1)) | ((i) & ((1L << (b)) - 1)))

QTC_KERNEL qtc_ch_apply1(real* st, long D, int bit, const real* m) {
  real* im = st + D;
  QTC_FOR(i, D / 2) {
    const long x0 = QTC_INSERT0(i, bit), x1 = x0 | (1L << bit);
    const real ar = st[x0], ai = im[x0], br = st[x1], bi = im[x1];
    st[x0] = m[0] * ar - m[1] * ai + m[2] * br - m[3] * bi;
    im[x0] = m[0] * ai + m[1] * ar + m[2] * bi + m[3] * br;
    st[x1] = m[4] * ar - m[5] * ai + m[6] * br - m[7] * bi;
    im[x1] = m[4] * ai + m[5] * ar + m[6] * bi + m[7] * br;
  }
}

QTC_KERNEL qtc_ch_apply2(real* st, long D, int b0, int b1, const real* m) {
  real* im = st + D;
  const int lo = b0 < b1 ? b0 : b1, hi = b0 < b1 ? b1 : b0;
  QTC_FOR(i, D / 4) {
    const long base = QTC_INSERT0(QTC_INSERT0(i, lo), hi);
    long x[4];
    real vr[4], vi[4];
    for (int k = 0; k < 4; ++k) {
      x[k] = base | ((k & 1) ? 1L << b0 : 0) | ((k & 2) ? 1L << b1 : 0);
      vr[k] = st[x[k]];
      vi[k] = im[x[k]];
    }
    for (int a = 0; a < 4; ++a) {
      real sr = 0, si = 0;
      for (int k = 0; k < 4; ++k) {
        const real mr = m[2 * (4 * a + k)], mi = m[2 * (4 * a + k) + 1];
        sr += mr * vr[k] - mi * vi[k];
        si += mr * vi[k] + mi * vr[k];
      }
      st[x[a]] = sr;
      im[x[a]] = si;
    }
  }
}

// CNOT is a permutation: swap the (control 1, target 0) and (control 1, target 1) entries
QTC_KERNEL qtc_ch_cnot(real* st, long D, int control, int target) {
  real* im = st + D;
  const int lo = control < target ? control : target, hi = control < target ? target : control;
  QTC_FOR(i, D / 4) {
    const long x0 = QTC_INSERT0(QTC_INSERT0(i, lo), hi) | (1L << control), x1 = x0 | (1L << target);
    const real r = st[x0], j = im[x0];
    st[x0] = st[x1]; im[x0] = im[x1];
    st[x1] = r; im[x1] = j;
  }
}

QTC_KERNEL qtc_ch_copy(real* dst, const real* src, long count) {
  QTC_FOR(i, count) dst[i] = src[i];
}

QTC_KERNEL qtc_ch_zero(real* dst, long count) {
  QTC_FOR(i, count) dst[i] = 0;
}

QTC_KERNEL qtc_ch_axpy(real* dst, const real* src, long count, real a) {
  QTC_FOR(i, count) dst[i] += a * src[i];
}

// rho := diag(v) (the other entries must be zero already)
QTC_KERNEL qtc_ch_diag_in(real* st, const real* v, long dim) {
  QTC_FOR(i, dim) st[i * dim + i] = v[i];
}

QTC_KERNEL qtc_ch_diag_out(const real* st, real* P, long dim) {
  QTC_FOR(i, dim) P[i] = st[i * dim + i];
}

// out[i] = row i's share of Tr(F P_q S) for Hermitian F, S (S[j^f, i] = conj S[i, j^f]):
// axis 0 (P = 1): the real part; axis 1, 2, 3 (X, Y, Z on qubit q): the imaginary part.
QTC_KERNEL qtc_ch_trace(const real* F, const real* S, real* out, int n, int axis, int q) {
  const long dim = 1L << n, D = dim * dim;
  const long f = (axis == 1 || axis == 2) ? 1L << q : 0;
  QTC_FOR(i, dim) {
    real acc = 0;
    for (long j = 0; j < dim; ++j) {
      const long a = i * dim + j, b = i * dim + (j ^ f);
      const real re = F[a] * S[b] + F[D + a] * S[D + b];      // F[i,j] conj(S[i, j^f])
      const real imag = F[D + a] * S[b] - F[a] * S[D + b];
      const int bit = (int)((j >> q) & 1);
      if (axis == 0) acc += re;
      else if (axis == 1) acc += imag;
      else if (axis == 2) acc += bit ? re : -re;                // p(j) = -i (bit 0) or +i (bit 1)
      else acc += bit ? -imag : imag;                           // p(j) = +1 (bit 0) or -1 (bit 1)
    }
    out[i] = acc;
  }
}

#ifndef __CUDACC__
// --- CPU drivers ---------------------------------------------------------------------------
// A chain: step s has alternatives alt_start[s] .. alt_start[s+1]-1 with weights wa[]; alt a has
// ops op_start[a] .. op_start[a+1]-1. Op o: kind[o] (0: one-qubit matrix, 1: two-qubit
// matrix, 2: cnot), qubits qa[o], qb[o], matrix mat[32 o ...], gaxis[o] (0: no angle gradient,
// 1/2/3: a rotation about X/Y/Z).

struct Chain {
  int n, nsteps;
  const int *alt_start, *op_start, *kind, *qa, *qb, *gaxis;
  const real *wa, *mat;
};

QTC_KERNEL qtc_ch_threads(int k) { omp_set_num_threads(k > 0 ? k : 1); }

// m on the row bits and conj(m) on the column bits (inverse: m^dagger and m^T)
static void apply_op(const Chain* c, real* st, int o, int inverse) {
  const long D = 1L << (2 * c->n);
  const int n = c->n, k = c->kind[o], dim = k == 0 ? 2 : 4;
  const real* m = c->mat + 32 * o;
  if (k == 2) {
    qtc_ch_cnot(st, D, n + c->qa[o], n + c->qb[o]);
    qtc_ch_cnot(st, D, c->qa[o], c->qb[o]);
    return;
  }
  real row[32], col[32];
  for (int a = 0; a < dim; ++a)
    for (int b = 0; b < dim; ++b) {
      const int src = inverse ? b * dim + a : a * dim + b;
      const real re = m[2 * src], im = inverse ? -m[2 * src + 1] : m[2 * src + 1];
      row[2 * (a * dim + b)] = re; row[2 * (a * dim + b) + 1] = im;
      col[2 * (a * dim + b)] = re; col[2 * (a * dim + b) + 1] = -im;
    }
  if (k == 0) {
    qtc_ch_apply1(st, D, n + c->qa[o], row);
    qtc_ch_apply1(st, D, c->qa[o], col);
  } else {
    qtc_ch_apply2(st, D, n + c->qa[o], n + c->qb[o], row);
    qtc_ch_apply2(st, D, c->qa[o], c->qb[o], col);
  }
}

static void apply_alt(const Chain* c, real* st, int a) {
  for (int o = c->op_start[a]; o < c->op_start[a + 1]; ++o) apply_op(c, st, o, 0);
}

static real trace(const Chain* c, const real* F, const real* S, real* rows, int axis, int q) {
  const long dim = 1L << c->n;
  qtc_ch_trace(F, S, rows, c->n, axis, q);
  real s = 0;
  for (long i = 0; i < dim; ++i) s += rows[i];
  return s;
}

// states: (nsteps + 1) density matrices; states[0] := |0><0|, states[s+1] := Phi_s(states[s]);
// scratch: one density matrix; P: diag of the last.
QTC_KERNEL qtc_ch_forward(int n, int nsteps, const int* alt_start, const int* op_start,
                          const int* kind, const int* qa, const int* qb, const int* gaxis,
                          const real* wa, const real* mat, real* states, real* scratch, real* P) {
  const Chain c = {n, nsteps, alt_start, op_start, kind, qa, qb, gaxis, wa, mat};
  const long dim = 1L << n, D2 = 2 * dim * dim;
  qtc_ch_zero(states, D2);
  states[0] = 1;
  for (int s = 0; s < nsteps; ++s) {
    const real* cur = states + s * D2;
    real* nxt = states + (s + 1) * D2;
    qtc_ch_zero(nxt, D2);
    for (int a = alt_start[s]; a < alt_start[s + 1]; ++a) {
      qtc_ch_copy(scratch, cur, D2);
      apply_alt(&c, scratch, a);
      qtc_ch_axpy(nxt, scratch, D2, wa[a]);
    }
  }
  qtc_ch_diag_out(states + nsteps * D2, P, dim);
}

// The adjoint pass: E := diag(g); for each step backwards, per alternative a: X = U_a rho U_a^+,
// Y = E, gw[a] = Tr(Y X); walking its ops backwards, gop[o] = wa[a] Im Tr(Y P X) at rotations,
// then both are un-applied; E := sum_a wa[a] U_a^+ E U_a. scratch: four density matrices and
// 2^n reals.
QTC_KERNEL qtc_ch_backward(int n, int nsteps, const int* alt_start, const int* op_start,
                           const int* kind, const int* qa, const int* qb, const int* gaxis,
                           const real* wa, const real* mat, const real* states, real* scratch,
                           const real* g, real* gw, real* gop) {
  const Chain c = {n, nsteps, alt_start, op_start, kind, qa, qb, gaxis, wa, mat};
  const long dim = 1L << n, D2 = 2 * dim * dim;
  real *X = scratch, *Y = X + D2, *E = Y + D2, *En = E + D2, *rows = En + D2;
  qtc_ch_zero(E, D2);
  qtc_ch_diag_in(E, g, dim);
  for (int s = nsteps - 1; s >= 0; --s) {
    qtc_ch_zero(En, D2);
    for (int a = alt_start[s]; a < alt_start[s + 1]; ++a) {
      qtc_ch_copy(X, states + s * D2, D2);
      apply_alt(&c, X, a);
      qtc_ch_copy(Y, E, D2);
      gw[a] = trace(&c, Y, X, rows, 0, 0);
      for (int o = op_start[a + 1] - 1; o >= op_start[a]; --o) {
        if (gaxis[o]) gop[o] = wa[a] * trace(&c, Y, X, rows, gaxis[o], qa[o]);
        apply_op(&c, X, o, 1);
        apply_op(&c, Y, o, 1);
      }
      qtc_ch_axpy(En, Y, D2, wa[a]);
    }
    real* t = E; E = En; En = t;
  }
}
#endif
