// qtc sampled-form kernels: K architectures of a per-position space, one statevector each, the
// alternative at every step read from a table of choices given at run time (sampled search;
// runtime/sampled_kernels.py). The passes are the channel form's (runtime/channel_kernels.py
// ChannelTables: a dense one-qubit gate, or one gather for a run of monomial gates), applied to a
// statevector instead of a density matrix, so one build of this file serves every architecture
// of every space. One source for CUDA (NVRTC) and C++ (g++ -fopenmp): an architecture is one
// block on the GPU (its threads share the amplitudes, a barrier between passes) and one OpenMP
// iteration on the CPU (each thread owns whole architectures; the barrier is a no-op there).
//
// Layout: a state of n qubits is 2 * dim reals (dim = 2^n), the real plane then the imaginary
// plane; architecture k's at k * 2 * dim. A 2x2 matrix is 8 interleaved (re, im) reals,
// row-major, as `mats` rows hold it (m in [0, 8), m^dagger in [8, 16)). Tables (int32):
//   choices[k * S + s]  the alternative architecture k takes at step s (0 for a fixed slot)
//   first[s]            the global index of step s's first alternative
//   alts[4 a ..]        alternative a: first segment, segments, first end term, end terms
//   segs[6 j ..]        segment j: kind (0 dense, 1 gather), row (of mats, or of the gather
//                       tables), qubit (dense), phased (gather), first term, terms (walking back,
//                       the terms taken just after this segment)
//   terms[t], terms[T + t], terms[2 T + t]   axis (0 weight: skipped, 1 X, 2 Y, 3 Z), qubit, row
//                       (a rotation's gradient row is row - nalts)
typedef double real;
#ifdef __CUDACC__
#define QTC_KERNEL extern "C" __global__ void
#define QTC_ARCH(k, K) for (long k = blockIdx.x; k < (long)(K); k += gridDim.x)
#define QTC_INNER(i, count) for (long i = threadIdx.x; i < (long)(count); i += blockDim.x)
#define QTC_SYNC() __syncthreads()
#define QTC_ADD(p, v) atomicAdd((p), (v))
#else
#include <omp.h>
#define QTC_KERNEL extern "C" void
#define QTC_ARCH(k, K) _Pragma("omp parallel for schedule(dynamic)") for (long k = 0; k < (long)(K); ++k)
#define QTC_INNER(i, count) for (long i = 0; i < (long)(count); ++i)
#define QTC_SYNC()
#define QTC_ADD(p, v) (*(p) += (v))
QTC_KERNEL qtc_sp_threads(int k) { omp_set_num_threads(k > 0 ? k : 1); }
#endif
#ifdef __CUDACC__
#define QTC_DEV static __device__
#else
#define QTC_DEV static inline
#endif

#define QTC_INSERT0(i, b) ((((i) >> (b)) << ((b) + 1)) | ((i) & ((1L << (b)) - 1)))

// s := m s on qubit q (in place; m: 8 interleaved reals)
QTC_DEV void qtc_sp_dense(real* s, long dim, int q, const real* m) {
  const real ar0 = m[0], ai0 = m[1], ar1 = m[2], ai1 = m[3];
  const real br0 = m[4], bi0 = m[5], br1 = m[6], bi1 = m[7];
  QTC_INNER(i, dim / 2) {
    const long x0 = QTC_INSERT0(i, q), x1 = x0 | (1L << q);
    const real ur = s[x0], ui = s[dim + x0], vr = s[x1], vi = s[dim + x1];
    s[x0] = ar0 * ur - ai0 * ui + ar1 * vr - ai1 * vi;
    s[dim + x0] = ar0 * ui + ai0 * ur + ar1 * vi + ai1 * vr;
    s[x1] = br0 * ur - bi0 * ui + br1 * vr - bi1 * vi;
    s[dim + x1] = br0 * ui + bi0 * ur + br1 * vi + bi1 * vr;
  }
  QTC_SYNC();
}

// s := e * s[t] (a run of monomial gates as one gather through `tmp`; phased 0: e all ones)
QTC_DEV void qtc_sp_gather(real* s, real* tmp, long dim, const int* t, const real* e, int phased) {
  QTC_INNER(x, dim) {
    real re = s[t[x]], im = s[dim + t[x]];
    if (phased) {
      const real a = e[2 * x] * re - e[2 * x + 1] * im;
      im = e[2 * x] * im + e[2 * x + 1] * re;
      re = a;
    }
    tmp[x] = re;
    tmp[dim + x] = im;
  }
  QTC_SYNC();
  QTC_INNER(x, 2 * dim) s[x] = tmp[x];
  QTC_SYNC();
}

// segment j applied to s (inverse: its adjoint)
QTC_DEV void qtc_sp_segment(const int* seg, real* s, real* tmp, long dim, int n, const real* mats,
                            const int* pinv, const int* perm, const real* fwd, const real* adj,
                            int inverse) {
  const int row = seg[1];
  if (seg[0] == 0) {
    qtc_sp_dense(s, dim, seg[2], mats + 16 * row + (inverse ? 8 : 0));
  } else {
    const int* t = (inverse ? perm : pinv) + row * dim;
    qtc_sp_gather(s, tmp, dim, t, (inverse ? adj : fwd) + 2 * row * dim, seg[3]);
  }
}

// the gradient terms [t0, t0 + count) of architecture k: Im <lam| P |psi> into grads[row - nalts]
QTC_DEV void qtc_sp_terms(const real* psi, const real* lam, real* grads, long dim, const int* terms,
                          int T, int t0, int count, int nalts) {
  for (int t = t0; t < t0 + count; ++t) {
    const int ax = terms[t], q = terms[T + t], row = terms[2 * T + t];
    if (ax == 0) continue;                     // a weight's term: the sampled form has none
    const long f = ax == 3 ? 0 : 1L << q;
    real acc = 0;
    QTC_INNER(x, dim) {
      const long y = x ^ f;                    // z = conj(lam[x]) psi[y]
      const real zr = lam[x] * psi[y] + lam[dim + x] * psi[dim + y];
      const real zi = lam[x] * psi[dim + y] - lam[dim + x] * psi[y];
      const int bit = (int)((x >> q) & 1);
      if (ax == 1) acc += zi;                           // X: Im z
      else if (ax == 2) acc += bit ? zr : -zr;          // Y: Im(c z), c = -i (bit 0), +i (bit 1)
      else acc += bit ? -zi : zi;                       // Z: (-1)^bit Im z
    }
    QTC_ADD(grads + row - nalts, acc);
  }
  QTC_SYNC();
}

// psi[k] := the state of architecture k; P[k] := |psi[k]|^2
QTC_KERNEL qtc_sp_forward(real* psi, real* tmp, real* P, long K, int n, int S, const int* choices,
                          const int* first, const int* alts, const int* segs, const real* mats,
                          const int* pinv, const int* perm, const real* fwd, const real* adj) {
  const long dim = 1L << n;
  QTC_ARCH(k, K) {
    real* s = psi + 2 * dim * k;
    real* t = tmp + 2 * dim * k;
    QTC_INNER(x, 2 * dim) s[x] = x == 0 ? 1 : 0;
    QTC_SYNC();
    for (int step = 0; step < S; ++step) {
      const int* a = alts + 4 * (first[step] + choices[k * S + step]);
      for (int j = a[0]; j < a[0] + a[1]; ++j)
        qtc_sp_segment(segs + 6 * j, s, t, dim, n, mats, pinv, perm, fwd, adj, 0);
    }
    QTC_INNER(x, dim) P[k * dim + x] = s[x] * s[x] + s[dim + x] * s[dim + x];
    QTC_SYNC();
  }
}

// The adjoint method per architecture: lam := g[k] * psi[k] (the loss's dL/dpsi*), then walking
// the steps and segments back, each term Im <lam| P |psi> where its table puts it, and psi, lam
// un-applied. psi is consumed (the caller passes a copy); grads[k * nrot + r]: rotation r's share.
QTC_KERNEL qtc_sp_backward(real* psi, real* lam, real* tmp, const real* g, real* grads, long K, int n,
                           int S, int nalts, int nrot, const int* choices, const int* first,
                           const int* alts, const int* segs, const real* mats, const int* pinv,
                           const int* perm, const real* fwd, const real* adj, const int* terms, int T) {
  const long dim = 1L << n;
  QTC_ARCH(k, K) {
    real* s = psi + 2 * dim * k;
    real* l = lam + 2 * dim * k;
    real* t = tmp + 2 * dim * k;
    real* gk = grads + nrot * k;
    QTC_INNER(x, dim) {
      l[x] = g[k * dim + x] * s[x];
      l[dim + x] = g[k * dim + x] * s[dim + x];
    }
    QTC_SYNC();
    for (int step = S - 1; step >= 0; --step) {
      const int* a = alts + 4 * (first[step] + choices[k * S + step]);
      qtc_sp_terms(s, l, gk, dim, terms, T, a[2], a[3], nalts);
      for (int j = a[0] + a[1] - 1; j >= a[0]; --j) {
        const int* seg = segs + 6 * j;
        qtc_sp_terms(s, l, gk, dim, terms, T, seg[4], seg[5], nalts);
        qtc_sp_segment(seg, s, t, dim, n, mats, pinv, perm, fwd, adj, 1);
        qtc_sp_segment(seg, l, t, dim, n, mats, pinv, perm, fwd, adj, 1);
      }
    }
  }
}
