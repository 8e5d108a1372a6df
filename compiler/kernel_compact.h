// qtc compact passes (qtc/compiler/kernel_compact.h): a pass over the state is one loop over the
// table of its ops, not one unrolled block per op, so the source does not grow with the code of
// the circuits, only with their tables (compiler/render_compact.py writes them after this file,
// with QTC_DIM, QTC_MAXREG and QTC_MAXOPS). The arithmetic is the unrolled renderer's, read from
// data: a tile of 2^rank vectors is loaded, every op of the pass is applied to it, it is stored.
// QTC_OUTLINE: the per-op loops, compiled once each (inlined into every pass loop, g++ -O3
// took 14 s instead of 4.6 s on the same source).
#ifdef __CUDACC__
#define QTC_INL __device__ __forceinline__
#define QTC_OUTLINE __device__ __forceinline__
#define QTC_TABLE __device__ const
#else
#define QTC_INL static inline
#define QTC_OUTLINE __attribute__((noinline)) static
#define QTC_TABLE static const
#endif

// One pass of one circuit: its state, its tile (block directions and their pivots, ascending)
// and its ops qtc_?_ops[op0 .. op0 + nops).
struct qtc_pass {
  long off;       // start of the circuit's state in the buffer (elements)
  int cplx;       // 1: a real plane then an imaginary plane; 0: one real plane
  int rank;
  long basis[4];
  int piv[4];
  int op0, nops;
};

// One op in stored coordinates. bits: diag | nrows << 1 | u << 3 | dlo << 8 | pm0 << 11 |
// pm1 << 14 | flip0 << 17 | flip1 << 18 (u: the direction's block part in register coordinates,
// dlo its lane part; pm and rhi: the lane and block parts of the label rows). gate, gen: rows of
// qtc_gates (the matrix or diagonal; a rotation's generator, -1 for none); th: the angle's index
// in theta (-1: a constant gate); form: its row of qtc_forms (half angle = th * hs + hh; the
// gradient reaches theta times gs).
struct qtc_op {
  int bits;
  long rhi0, rhi1;
  int gate, gen, th, form;
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

// The label bits of block y (1 row: bit 0; 2 rows: bits 0 and 1) before the lanes' own.
QTC_INL int qtc_label(const qtc_op& o, long y) {
  const int l0 = QTC_PAR(o.rhi0 & y) ^ ((o.bits >> 17) & 1);
  if (QTC_OPROWS(o.bits) == 1) return l0;
  return l0 | ((QTC_PAR(o.rhi1 & y) ^ ((o.bits >> 18) & 1)) << 1);
}

// A lane shuffle by a mask known only at run time: on the CPU one of the constant shuffles
// (a variable permutation of a GCC vector is scalar code).
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

// (cr + i ci) x + (dr + i di) y for c, d = co[0..1], co[2..3]; one plane (C = 0) or both
template <bool C>
QTC_INL void qtc_mac(const qv* co, qv xr, qv xi, qv yr, qv yi, qv& nr, qv& ni) {
  if (!C) {
    nr = co[0] * xr + co[2] * yr;
    return;
  }
  nr = co[0] * xr - co[1] * xi + co[2] * yr - co[3] * yi;
  ni = co[0] * xi + co[1] * xr + co[2] * yi + co[3] * yr;
}

// Apply op o (coefficients co) to the nreg registers (v re, w im) of the tile at block y0.
template <bool C>
QTC_OUTLINE void qtc_apply(const qtc_op& o, const qtc_co co, long y0, const long* off, int nreg,
                       qv* v, qv* w) {
  if (QTC_OPDIAG(o.bits)) {
    for (int s = 0; s < nreg; ++s) {
      const qv* d = co[qtc_label(o, y0 ^ off[s])];
      if (!C) {
        v[s] = d[0] * v[s];
        continue;
      }
      const qv xr = v[s];
      v[s] = d[0] * xr - d[1] * w[s];
      w[s] = d[0] * w[s] + d[1] * xr;
    }
    return;
  }
  const int u = QTC_OPU(o.bits), dlo = QTC_OPDLO(o.bits);
  for (int s = 0; s < nreg; ++s) {
    const int p = s ^ u;
    if (p < s) continue;
    const qv xr = v[s], pr = v[p];
    const qv xi = C ? w[s] : xr, pi = C ? w[p] : pr;
    const qv yr = qtc_lx(pr, dlo), yi = C ? qtc_lx(pi, dlo) : yr;
    qv nr, ni;
    qtc_mac<C>(co[qtc_label(o, y0 ^ off[s])], xr, xi, yr, yi, nr, ni);
    if (p != s) {
      const qv zr = qtc_lx(xr, dlo), zi = C ? qtc_lx(xi, dlo) : zr;
      qv mr, mi;
      qtc_mac<C>(co[qtc_label(o, y0 ^ off[p])], pr, pi, zr, zi, mr, mi);
      v[p] = mr;
      if (C) w[p] = mi;
    }
    v[s] = nr;
    if (C) w[s] = ni;
  }
}

// acc += Im(conj(lambda) . P psi) over the tile, P = the generator (coefficients co): the
// gradient of the op's angle.
template <bool C>
QTC_OUTLINE void qtc_grad(const qtc_op& o, const qtc_co co, long y0, const long* off, int nreg,
                          const qv* v, const qv* w, const qv* a, const qv* e, qacc& acc) {
  qv g = QTC_ZERO;
  const int u = QTC_OPU(o.bits), dlo = QTC_OPDLO(o.bits);
  for (int s = 0; s < nreg; ++s) {
    const qv* c = co[qtc_label(o, y0 ^ off[s])];
    qv tr, ti;
    if (QTC_OPDIAG(o.bits)) {
      tr = C ? c[0] * v[s] - c[1] * w[s] : c[0] * v[s];
      ti = C ? c[0] * w[s] + c[1] * v[s] : c[1] * v[s];
    } else {
      const int p = s ^ u;
      const qv yr = qtc_lx(v[p], dlo);
      const qv yi = C ? qtc_lx(w[p], dlo) : yr;
      if (C) {
        qtc_mac<true>(c, v[s], w[s], yr, yi, tr, ti);
      } else {
        tr = c[0] * v[s] + c[2] * yr;
        ti = c[1] * v[s] + c[3] * yr;
      }
    }
    g += C ? a[s] * ti - e[s] * tr : a[s] * ti;
  }
  acc += QTC_ACC(g);
}

// The block offsets of the registers and the tile's first block.
QTC_INL int qtc_offsets(const qtc_pass& P, long* off) {
  off[0] = 0;
  for (int i = 0, n = 1; i < P.rank; ++i, n <<= 1)
    for (int s = 0; s < n; ++s) off[n + s] = off[s] ^ P.basis[i];
  return 1 << P.rank;
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

// Load (store) the registers of one state (two planes when C) at block y0.
template <bool C>
QTC_INL void qtc_load(const real* re, const real* im, long y0, const long* off, int nreg, qv* v, qv* w) {
  for (int s = 0; s < nreg; ++s) {
    v[s] = QTC_LD(re, y0 ^ off[s]);
    if (C) w[s] = QTC_LD(im, y0 ^ off[s]);
  }
}
template <bool C>
QTC_INL void qtc_store(real* re, real* im, long y0, const long* off, int nreg, const qv* v, const qv* w) {
  for (int s = 0; s < nreg; ++s) {
    QTC_ST(re, y0 ^ off[s], v[s]);
    if (C) QTC_ST(im, y0 ^ off[s], w[s]);
  }
}

// Forward pass P (ops O): psi := U psi over the tiles t0, t0 + step, ... < t1.
template <bool C>
QTC_INL void qtc_fpass_run(const qtc_pass& P, const qtc_op* O, const real* G, const qtc_form* F,
                           real* st, const real* th, long t0, long t1, long step) {
  long off[QTC_MAXREG];
  const int nreg = qtc_offsets(P, off);
  qtc_co co[QTC_MAXOPS];
  for (int k = 0; k < P.nops; ++k) qtc_op_coefs(O[k], G, F, th, co[k], 0);
  real* const vp = st + P.off;
  real* const wp = vp + QTC_DIM;
  for (long t = t0; t < t1; t += step) {
    const long y0 = qtc_tile(P, t);
    qv v[QTC_MAXREG], w[QTC_MAXREG];
    qtc_load<C>(vp, wp, y0, off, nreg, v, w);
    for (int k = 0; k < P.nops; ++k) qtc_apply<C>(O[k], co[k], y0, off, nreg, v, w);
    qtc_store<C>(vp, wp, y0, off, nreg, v, w);
  }
}

// Backward pass P (ops O in reverse order, adjoint tables): each angle's gradient, then psi and
// lambda := U^dag psi, U^dag lambda.
template <bool C>
QTC_INL void qtc_bpass_run(const qtc_pass& P, const qtc_op* O, const real* G, const qtc_form* F,
                           real* st, real* lam, const real* th, double* gth, long t0, long t1,
                           long step) {
  long off[QTC_MAXREG];
  const int nreg = qtc_offsets(P, off);
  qtc_co co[QTC_MAXOPS], gen[QTC_MAXOPS];
  qacc acc[QTC_MAXOPS];
  const qacc zero = {};
  for (int k = 0; k < P.nops; ++k) {
    qtc_op_coefs(O[k], G, F, th, co[k], gen[k]);
    acc[k] = zero;
  }
  real* const vp = st + P.off;
  real* const wp = vp + QTC_DIM;
  real* const ap = lam + P.off;
  real* const ep = ap + QTC_DIM;
  for (long t = t0; t < t1; t += step) {
    const long y0 = qtc_tile(P, t);
    qv v[QTC_MAXREG], w[QTC_MAXREG], a[QTC_MAXREG], e[QTC_MAXREG];
    qtc_load<C>(vp, wp, y0, off, nreg, v, w);
    qtc_load<C>(ap, ep, y0, off, nreg, a, e);
    for (int k = 0; k < P.nops; ++k) {
      if (O[k].gen >= 0) qtc_grad<C>(O[k], gen[k], y0, off, nreg, v, w, a, e, acc[k]);
      qtc_apply<C>(O[k], co[k], y0, off, nreg, v, w);
      qtc_apply<C>(O[k], co[k], y0, off, nreg, a, e);
    }
    qtc_store<C>(vp, wp, y0, off, nreg, v, w);
    qtc_store<C>(ap, ep, y0, off, nreg, a, e);
  }
  for (int k = 0; k < P.nops; ++k)
    if (O[k].gen >= 0) qtc_add(&gth[O[k].th], F[O[k].form].gs * QTC_HSUM(acc[k]));
}
