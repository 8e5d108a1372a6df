// qtc compact passes (qtc/compiler/csrc/compact.h): a pass over the state is one loop over the
// table of its ops, not one unrolled block per op, so the source does not grow with the code of
// the circuits, only with their tables (compiler/render/compact.py writes them after this file).
// The arithmetic is the unrolled renderer's, read from data: a tile of 2^rank vectors is loaded,
// every op of the pass is applied to it, it is stored. Nothing here depends on the program: on
// the CPU this file plus compact_lib.c is the kernel library, compiled once per dtype and
// machine (runtime/cache.py) and linked with each program's tables.
#ifdef __CUDACC__
#define QTC_INL __device__ __forceinline__
#define QTC_TABLE __device__ const
#define QTC_UNROLL _Pragma("unroll")
#else
#define QTC_INL static inline
#define QTC_TABLE static const
#define QTC_UNROLL _Pragma("GCC unroll 16")
#endif
// the per-op code inside a tile loop: always inlined on the CPU, so the tile stays in registers
#ifdef __CUDACC__
#define QTC_OPINL QTC_INL
#else
#define QTC_OPINL static inline __attribute__((always_inline))
#endif

#define QTC_CHUNK 16   // ops of a pass applied per sweep over its tiles

// One pass of one circuit: its state, its tile (block directions and their pivots, ascending)
// and its ops qtc_?_ops[op0 .. op0 + nops).
struct qtc_pass {
  long off;       // start of the circuit's state in the buffer (elements)
  long dim;       // elements of one plane (2^n)
  int cplx;       // 1: a real plane then an imaginary plane; 0: one real plane
  int rank;
  long basis[4];
  int piv[4];
  int op0, nops;
};

// One op in stored coordinates. bits: diag | nrows << 1 | u << 3 | dlo << 8 | pm0 << 11 |
// pm1 << 14 | flip0 << 17 | flip1 << 18 | shape << 19 (u: the direction's block part in register
// coordinates, dlo its lane part; pm and rhi: the lane and block parts of the label rows; shape:
// which parts of a dense complex op's matrix and generator can be non-zero, qtc_mac's K: 0 any,
// 1 a real matrix with an RY-like generator, 2 RX-like with a real one). gate, gen: rows of
// qtc_gates (the matrix or diagonal; a rotation's generator, -1 for none); th: the angle's index
// in theta (-1: a constant gate); form: its row of qtc_forms (half angle = th * hs + hh; the
// gradient reaches theta times gs); kap: bits 2s, 2s + 1 are the label bits of register s's block
// offset in the pass's tile.
struct qtc_op {
  int bits;
  long rhi0, rhi1;
  int gate, gen, th, form;
  unsigned kap;
};
struct qtc_form { real hs, hh; double gs; };

// A gate's table: entries (m00, m01, m10, m11) of a 2x2 matrix, or a diagonal by label bits,
// each as re = a + b c + d s, im = e + f c + g s with c, s = cos, sin of the half angle.
QTC_INL void qtc_entries(const real* G, real c, real s, real E[4][2]) {
  for (int e = 0; e < 4; ++e) {
    const real* g = G + 6 * e;
    E[e][0] = g[0] + g[1] * c + g[2] * s;
    E[e][1] = g[3] + g[4] * c + g[5] * s;
  }
}

#define QTC_OPDIAG(b) ((b) & 1)
#define QTC_OPROWS(b) (((b) >> 1) & 3)
#define QTC_OPU(b) (((b) >> 3) & 31)
#define QTC_OPDLO(b) (((b) >> 8) & 7)
#define QTC_OPPM0(b) (((b) >> 11) & 7)
#define QTC_OPPM1(b) (((b) >> 14) & 7)

// A lane shuffle by a mask known only at run time, on a CPU without AVX-512: one of the constant
// shuffles (a variable permutation of a GCC vector is scalar code there).
#ifdef __CUDACC__
#define qtc_lx(v, m) QTC_LX((v), (m))
#else
QTC_INL qv qtc_lx(qv v, int m) {
  switch (m) {
    case 1: return QTC_LX(v, 1);
    case 2: return QTC_LX(v, 2);
    case 3: return QTC_LX(v, 3);
    case 4: return QTC_LX(v, 4);
    case 5: return QTC_LX(v, 5);
    case 6: return QTC_LX(v, 6);
    case 7: return QTC_LX(v, 7);
    default: return v;
  }
}
#endif

// An op's coefficients per lane for each label variant v of the block (computed once per
// call): co[v] = (Ar, Ai, Br, Bi) for a 2x2 table, where an element with label l (v ^ the lane's
// label bits) takes m[l][l] times itself plus m[l][1 - l] times its partner; (Dr, Di) = the
// diagonal entry of label l for a diagonal table.
typedef qv qtc_co[4][4];
QTC_INL void qtc_coefs(const qtc_op& o, const real E[4][2], qtc_co co) {
  const int pm0 = QTC_OPPM0(o.bits), pm1 = QTC_OPPM1(o.bits);
  for (int v = 0; v < (1 << QTC_OPROWS(o.bits)); ++v)
    for (int p = 0; p < 2; ++p) {
      if (!QTC_OPDIAG(o.bits)) {
        co[v][p] = qtc_sel1(pm0, E[3 * v][p], E[3 * (v ^ 1)][p]);   // m00 is entry 0, m11 entry 3
        co[v][2 + p] = qtc_sel1(pm0, E[1 + v][p], E[2 - v][p]);     // m01 is entry 1, m10 entry 2
      } else if (QTC_OPROWS(o.bits) == 1) {
        co[v][p] = qtc_sel1(pm0, E[v][p], E[v ^ 1][p]);
      } else {
        co[v][p] = qtc_sel2(pm0, pm1, E[v][p], E[v ^ 1][p], E[v ^ 2][p], E[v ^ 3][p]);
      }
    }
}

// (cr + i ci) x + (dr + i di) y for c, d = co[0..1], co[2..3]; one plane (C = 0) or both. K: the
// parts that can be non-zero (the gate table's structural zeros, from the renderer): 0 all; 1 a real
// matrix (ci = di = 0: H, RY); 2 a real diagonal and an imaginary off-diagonal (ci = dr = 0: RX).
template <bool C, int K = 0>
QTC_OPINL void qtc_mac(const qv* co, qv xr, qv xi, qv yr, qv yi, qv& nr, qv& ni) {
  if (!C || K == 1) {
    nr = co[0] * xr + co[2] * yr;
    if (C) ni = co[0] * xi + co[2] * yi;
  } else if (K == 2) {
    nr = co[0] * xr - co[3] * yi;
    ni = co[0] * xi + co[3] * yr;
  } else {
    nr = co[0] * xr - co[1] * xi + co[2] * yr - co[3] * yi;
    ni = co[0] * xi + co[1] * xr + co[2] * yi + co[3] * yr;
  }
}

// The block offsets of the registers and the tile's first block.
QTC_INL void qtc_offsets(const qtc_pass& P, long* off) {
  off[0] = 0;
  for (int i = 0, n = 1; i < P.rank; ++i, n <<= 1)
    for (int s = 0; s < n; ++s) off[n + s] = off[s] ^ P.basis[i];
}
QTC_INL long qtc_tile(const qtc_pass& P, long t) {
  long y0 = t << QTC_M;
  for (int i = 0; i < P.rank; ++i) {
    const long mask = (1L << P.piv[i]) - 1;
    y0 = (y0 & mask) | ((y0 & ~mask) << 1);
  }
  return y0;
}
// The coefficients of op o's table (G row `gate`) at its angle, and of its generator.
QTC_INL void qtc_op_coefs(const qtc_op& o, const real* G, const qtc_form* F, const real* th,
                          qtc_co co, qtc_co gen) {
  real c = 0, s = 0, E[4][2];
  if (o.th >= 0) {
    const real half = th[o.th] * F[o.form].hs + F[o.form].hh;
    c = QTC_COS(half);
    s = QTC_SIN(half);
  }
  qtc_entries(G + 24 * o.gate, c, s, E);
  qtc_coefs(o, E, co);
  if (gen && o.gen >= 0) {
    qtc_entries(G + 24 * o.gen, 0, 0, E);
    qtc_coefs(o, E, gen);
  }
}

// --- the tile loop, specialised --------------------------------------------------------------
// A pass runs as qtc_fpass_r<C, R> / qtc_bpass_r<C, R>: the tile rank R (2^R registers per
// plane) and the pairing U of an op (its direction's block part, register s meets s ^ U) are
// template parameters, so the loops over registers unroll and each register index is a
// constant: the tile's registers stay in machine registers across the ops of the pass, as in
// the unrolled rendering. What an op needs per tile is prepared once per call (qtc_prep): its
// coefficients per label variant and its lane permutation; `kap` (the label bits each register
// adds to the tile's own, 2 bits per register, so a register's label is one shift and xor) and
// the shape come from the renderer.
struct qtc_opc {
  qtc_co co, gen;   // coefficients per label variant; the generator's (gradient ops only)
#if !defined(__CUDACC__) && defined(__AVX512F__)
  qvi perm;         // the lane permutation lane j -> j ^ dlo (one vpermpd)
#endif
  long rhi0, rhi1;  // block parts of the label rows
  unsigned kap;     // bits 2s, 2s+1: label bits of register s's block offset
  int flips, rows2, diag, u, dlo, grad;
  int form;         // the op's shape (bits 19, 20 of qtc_op.bits)
};

QTC_INL void qtc_prep(const qtc_op& o, const real* G, const qtc_form* F, const real* th, bool grad,
                      qtc_opc& c) {
  qtc_op_coefs(o, G, F, th, c.co, grad ? c.gen : 0);
  c.rhi0 = o.rhi0;
  c.rhi1 = QTC_OPROWS(o.bits) == 2 ? o.rhi1 : 0;
  c.flips = ((o.bits >> 17) & 1) | (QTC_OPROWS(o.bits) == 2 ? ((o.bits >> 18) & 1) << 1 : 0);
  c.rows2 = QTC_OPROWS(o.bits) == 2;
  c.diag = QTC_OPDIAG(o.bits);
  c.u = QTC_OPU(o.bits);
  c.dlo = QTC_OPDLO(o.bits);
  c.grad = grad && o.gen >= 0;
  c.form = (o.bits >> 19) & 3;
  c.kap = o.kap;
#if !defined(__CUDACC__) && defined(__AVX512F__)
  for (int j = 0; j < QTC_W; ++j) c.perm[j] = j ^ c.dlo;
#endif
}

// the label bits of the tile at block y0 (before each register's and lane's own)
QTC_INL int qtc_tile_label(const qtc_opc& c, long y0) {
  return (QTC_PAR(c.rhi0 & y0) | (c.rows2 ? QTC_PAR(c.rhi1 & y0) << 1 : 0)) ^ c.flips;
}
#define QTC_LAB(c, b, s) ((b) ^ (((c).kap >> (2 * (s))) & 3))

// the partner lanes of an op's pair (lane j meets lane j ^ dlo)
#if defined(__CUDACC__)
#define QTC_LXO(v, c) QTC_LX((v), (c).dlo)
#elif defined(__AVX512F__)
#define QTC_LXO(v, c) __builtin_shuffle((v), (c).perm)
#else
#define QTC_LXO(v, c) qtc_lx((v), (c).dlo)
#endif

// a diagonal op on the N registers of one state
template <bool C, int N>
QTC_OPINL void qtc_diag(const qtc_opc& c, int b, qv* v, qv* w) {
QTC_UNROLL
  for (int s = 0; s < N; ++s) {
    const qv* d = c.co[QTC_LAB(c, b, s)];
    if (!C) {
      v[s] = d[0] * v[s];
    } else {
      const qv xr = v[s];
      v[s] = d[0] * xr - d[1] * w[s];
      w[s] = d[0] * w[s] + d[1] * xr;
    }
  }
}

// a dense op whose pairs are registers (s, s ^ U), lanes j and j ^ dlo
template <bool C, int N, int U, int K>
QTC_OPINL void qtc_dense(const qtc_opc& c, int b, qv* v, qv* w) {
QTC_UNROLL
  for (int s = 0; s < N; ++s) {
    const int p = s ^ (U < 0 ? c.u : U);
    if (p < s) continue;
    const qv xr = v[s], pr = v[p];
    const qv xi = C ? w[s] : xr, pi = C ? w[p] : pr;
    const qv yr = QTC_LXO(pr, c), yi = C ? QTC_LXO(pi, c) : yr;
    qv nr, ni;
    qtc_mac<C, K>(c.co[QTC_LAB(c, b, s)], xr, xi, yr, yi, nr, ni);
    if (p != s) {
      const qv zr = QTC_LXO(xr, c), zi = C ? QTC_LXO(xi, c) : zr;
      qv mr, mi;
      qtc_mac<C, K>(c.co[QTC_LAB(c, b, p)], pr, pi, zr, zi, mr, mi);
      v[p] = mr;
      if (C) w[p] = mi;
    }
    v[s] = nr;
    if (C) w[s] = ni;
  }
}

// g += Im(conj(lambda) . P psi) over the N registers, P = the generator (c.gen)
template <bool C, int N, int U, int K>
QTC_OPINL void qtc_dgrad(const qtc_opc& c, int b, const qv* v, const qv* w, const qv* a, const qv* e,
                       qacc& acc) {
  qv g = QTC_ZERO;
QTC_UNROLL
  for (int s = 0; s < N; ++s) {
    const qv* k = c.gen[QTC_LAB(c, b, s)];
    qv tr, ti;
    if (c.diag) {
      tr = C ? k[0] * v[s] - k[1] * w[s] : k[0] * v[s];
      ti = C ? k[0] * w[s] + k[1] * v[s] : k[1] * v[s];
    } else {
      const int p = s ^ (U < 0 ? c.u : U);
      const qv yr = QTC_LXO(v[p], c);
      const qv yi = C ? QTC_LXO(w[p], c) : yr;
      if (C) {
        qtc_mac<true, K>(k, v[s], w[s], yr, yi, tr, ti);
      } else {
        tr = k[0] * v[s] + k[2] * yr;
        ti = k[1] * v[s] + k[3] * yr;
      }
    }
    g += C ? a[s] * ti - e[s] * tr : a[s] * ti;
  }
  acc += QTC_ACC(g);
}

// one op of a backward pass: its gradient, then psi and lambda := U^dag psi, U^dag lambda
template <bool C, int N, int U, int F>
QTC_OPINL void qtc_bop(const qtc_opc& c, int b, qv* v, qv* w, qv* a, qv* e, qacc& acc) {
  if (c.grad) qtc_dgrad<C, N, U, F == 0 ? 0 : 3 - F>(c, b, v, w, a, e, acc);
  if (c.diag) {
    qtc_diag<C, N>(c, b, v, w);
    qtc_diag<C, N>(c, b, a, e);
  } else {
    qtc_dense<C, N, U, F>(c, b, v, w);
    qtc_dense<C, N, U, F>(c, b, a, e);
  }
}

// An op's pairing U as a template parameter (on the CPU: a switch with one case per U < N, so
// every register index is a constant), or U = -1: read at run time (on the GPU, where a thread
// holds one lane and NVRTC's time grows with every instantiation).
#ifdef __CUDACC__
template <bool C, int N>
QTC_INL void qtc_fop(const qtc_opc& c, int b, qv* v, qv* w) {
  if (c.diag) qtc_diag<C, N>(c, b, v, w);
  else qtc_dense<C, N, -1, 0>(c, b, v, w);
}
template <bool C, int N>
QTC_INL void qtc_bops(const qtc_opc& c, int b, qv* v, qv* w, qv* a, qv* e, qacc& acc) {
  qtc_bop<C, N, -1, 0>(c, b, v, w, a, e, acc);
}
#else
#define QTC_PAIRINGS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) \
  X(14) X(15)
template <bool C, int N, int F>
QTC_OPINL void qtc_fop_f(const qtc_opc& c, int b, qv* v, qv* w) {
  if (c.diag) {
    qtc_diag<C, N>(c, b, v, w);
    return;
  }
#define QTC_CASE(U) case U: if constexpr (U < N) qtc_dense<C, N, U, F>(c, b, v, w); break;
  switch (c.u) { QTC_PAIRINGS(QTC_CASE) }
#undef QTC_CASE
}
template <bool C, int N, int F>
QTC_OPINL void qtc_bops_f(const qtc_opc& c, int b, qv* v, qv* w, qv* a, qv* e, qacc& acc) {
#define QTC_CASE(U) case U: if constexpr (U < N) qtc_bop<C, N, U, F>(c, b, v, w, a, e, acc); break;
  switch (c.diag ? 0 : c.u) { QTC_PAIRINGS(QTC_CASE) }
#undef QTC_CASE
}
// a complex op by its shapes (a real circuit has one plane: its shape does not matter)
template <bool C, int N>
QTC_INL void qtc_fop(const qtc_opc& c, int b, qv* v, qv* w) {
  if (!C || c.form == 0) qtc_fop_f<C, N, 0>(c, b, v, w);
  else if (c.form == 1) qtc_fop_f<C, N, 1>(c, b, v, w);
  else qtc_fop_f<C, N, 2>(c, b, v, w);
}
template <bool C, int N>
QTC_INL void qtc_bops(const qtc_opc& c, int b, qv* v, qv* w, qv* a, qv* e, qacc& acc) {
  if (!C || c.form == 0) qtc_bops_f<C, N, 0>(c, b, v, w, a, e, acc);
  else if (c.form == 1) qtc_bops_f<C, N, 1>(c, b, v, w, a, e, acc);
  else qtc_bops_f<C, N, 2>(c, b, v, w, a, e, acc);
}
#endif

// Load (store) the N registers of one state (two planes when C) at block y0.
template <bool C, int N>
QTC_INL void qtc_load(const real* re, const real* im, long y0, const long* off, qv* v, qv* w) {
QTC_UNROLL
  for (int s = 0; s < N; ++s) {
    v[s] = QTC_LD(re, y0 ^ off[s]);
    if (C) w[s] = QTC_LD(im, y0 ^ off[s]);
  }
}
template <bool C, int N>
QTC_INL void qtc_store(real* re, real* im, long y0, const long* off, const qv* v, const qv* w) {
QTC_UNROLL
  for (int s = 0; s < N; ++s) {
    QTC_ST(re, y0 ^ off[s], v[s]);
    if (C) QTC_ST(im, y0 ^ off[s], w[s]);
  }
}

// Forward pass P of rank R (ops O): psi := U psi over the tiles t0, t0 + step, ... < t1.
template <bool C, int R>
QTC_INL void qtc_fpass_r(const qtc_pass& P, const qtc_op* O, const real* G, const qtc_form* F,
                         real* st, const real* th, long t0, long t1, long step) {
  constexpr int N = 1 << R;
  long off[N];
  qtc_offsets(P, off);
  qtc_opc ops[QTC_CHUNK];
  for (int k = 0; k < P.nops; ++k) qtc_prep(O[k], G, F, th, false, ops[k]);
  real* const vp = st + P.off;
  real* const wp = vp + P.dim;
  for (long t = t0; t < t1; t += step) {
    const long y0 = qtc_tile(P, t);
    qv v[N], w[N];
    qtc_load<C, N>(vp, wp, y0, off, v, w);
    for (int k = 0; k < P.nops; ++k) {
      const qtc_opc& c = ops[k];
      qtc_fop<C, N>(c, qtc_tile_label(c, y0), v, w);
    }
    qtc_store<C, N>(vp, wp, y0, off, v, w);
  }
}

// Backward pass P of rank R (ops O in reverse order, adjoint tables): each angle's gradient,
// then psi and lambda := U^dag psi, U^dag lambda.
template <bool C, int R>
QTC_INL void qtc_bpass_r(const qtc_pass& P, const qtc_op* O, const real* G, const qtc_form* F,
                         real* st, real* lam, const real* th, double* gth, long t0, long t1,
                         long step) {
  constexpr int N = 1 << R;
  long off[N];
  qtc_offsets(P, off);
  qtc_opc ops[QTC_CHUNK];
  qacc acc[QTC_CHUNK];
  const qacc zero = {};
  for (int k = 0; k < P.nops; ++k) {
    qtc_prep(O[k], G, F, th, true, ops[k]);
    acc[k] = zero;
  }
  real* const vp = st + P.off;
  real* const wp = vp + P.dim;
  real* const ap = lam + P.off;
  real* const ep = ap + P.dim;
  for (long t = t0; t < t1; t += step) {
    const long y0 = qtc_tile(P, t);
    qv v[N], w[N], a[N], e[N];
    qtc_load<C, N>(vp, wp, y0, off, v, w);
    qtc_load<C, N>(ap, ep, y0, off, a, e);
    for (int k = 0; k < P.nops; ++k) {
      const qtc_opc& c = ops[k];
      qtc_bops<C, N>(c, qtc_tile_label(c, y0), v, w, a, e, acc[k]);
    }
    qtc_store<C, N>(vp, wp, y0, off, v, w);
    qtc_store<C, N>(ap, ep, y0, off, a, e);
  }
  for (int k = 0; k < P.nops; ++k)
    if (ops[k].grad) qtc_add(&gth[O[k].th], F[O[k].form].gs * QTC_HSUM(acc[k]));
}

// A whole pass (ops O = its records): the rank and the kind of state as template parameters,
// its ops QTC_CHUNK at a time (each chunk sweeps the tiles t0.. < t1 again; the order of the
// ops on every element is kept).
#define QTC_RANKS(X) X(0) X(1) X(2) X(3) X(4)
template <bool C>
QTC_INL void qtc_fpass_c(const qtc_pass& P, const qtc_op* O, const real* G, const qtc_form* F,
                         real* st, const real* th, long t0, long t1, long step) {
  for (int o0 = 0; o0 < P.nops; o0 += QTC_CHUNK) {
    qtc_pass Q = P;
    Q.nops = P.nops - o0 < QTC_CHUNK ? P.nops - o0 : QTC_CHUNK;
#define QTC_FRANK(R) case R: qtc_fpass_r<C, R>(Q, O + o0, G, F, st, th, t0, t1, step); break;
    switch (P.rank) { QTC_RANKS(QTC_FRANK) }
#undef QTC_FRANK
  }
}
template <bool C>
QTC_INL void qtc_bpass_c(const qtc_pass& P, const qtc_op* O, const real* G, const qtc_form* F,
                         real* st, real* lam, const real* th, double* gth, long t0, long t1,
                         long step) {
  for (int o0 = 0; o0 < P.nops; o0 += QTC_CHUNK) {
    qtc_pass Q = P;
    Q.nops = P.nops - o0 < QTC_CHUNK ? P.nops - o0 : QTC_CHUNK;
#define QTC_BRANK(R) case R: qtc_bpass_r<C, R>(Q, O + o0, G, F, st, lam, th, gth, t0, t1, step); break;
    switch (P.rank) { QTC_RANKS(QTC_BRANK) }
#undef QTC_BRANK
  }
}
QTC_INL void qtc_fpass_run(const qtc_pass& P, const qtc_op* O, const real* G, const qtc_form* F,
                           real* st, const real* th, long t0, long t1, long step) {
  if (P.cplx) qtc_fpass_c<true>(P, O, G, F, st, th, t0, t1, step);
  else qtc_fpass_c<false>(P, O, G, F, st, th, t0, t1, step);
}
QTC_INL void qtc_bpass_run(const qtc_pass& P, const qtc_op* O, const real* G, const qtc_form* F,
                           real* st, real* lam, const real* th, double* gth, long t0, long t1,
                           long step) {
  if (P.cplx) qtc_bpass_c<true>(P, O, G, F, st, lam, th, gth, t0, t1, step);
  else qtc_bpass_c<false>(P, O, G, F, st, lam, th, gth, t0, t1, step);
}
#ifndef __CUDACC__
// the kernel library's entry points (compact_lib.c), called by each program's qtc_fpass /
// qtc_bpass with its own tables
extern "C" void qtc_lib_fpass(const qtc_pass* P, const qtc_op* O, const real* G, const qtc_form* F,
                              real* st, const real* th, long t0, long t1, long step);
extern "C" void qtc_lib_bpass(const qtc_pass* P, const qtc_op* O, const real* G, const qtc_form* F,
                              real* st, real* lam, const real* th, double* gth, long t0, long t1,
                              long step);
#endif
