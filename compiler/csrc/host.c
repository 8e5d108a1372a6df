// qtc CPU drivers (qtc/compiler/csrc/host.c): run every pass of every circuit in order.
// The generated lines above define the pass tables QTC_{F,B}_{TILES,START,ORDER}, QTC_NCIRC,
// QTC_{F,B}PASSES and qtc_fpass / qtc_bpass, which run pass k (of every circuit's passes in
// order) over some of its tiles: a call through a table of functions (unrolled rendering) or
// the table-driven loop of compact.h (compact rendering). mode 0: whole circuits in parallel (dynamic schedule, costliest
// first; no barrier between passes); mode 1: every pass split across the threads (for fewer
// circuits than threads).
#ifndef __CUDACC__
static const long qtc_f_tiles[] = {QTC_F_TILES};
static const int qtc_f_start[] = {QTC_F_START};
static const int qtc_f_order[] = {QTC_F_ORDER};
static const long qtc_b_tiles[] = {QTC_B_TILES};
static const int qtc_b_start[] = {QTC_B_START};
static const int qtc_b_order[] = {QTC_B_ORDER};
#define QTC_DRIVE(tag, passes, ...) \
  if (mode == 0) { \
    _Pragma("omp parallel for schedule(dynamic, 1)") \
    for (int i = 0; i < QTC_NCIRC; ++i) { \
      const int c = qtc_##tag##_order[i]; \
      for (int k = qtc_##tag##_start[c]; k < qtc_##tag##_start[c + 1]; ++k) \
        qtc_##tag##pass(k, __VA_ARGS__, 0, qtc_##tag##_tiles[k], 1); \
    } \
  } else { \
    _Pragma("omp parallel") { \
      const long nt = omp_get_num_threads(), id = omp_get_thread_num(); \
      for (int j = 0; j < passes; ++j) { \
        for (int c = 0; c < QTC_NCIRC; ++c) { \
          const int k = qtc_##tag##_start[c] + j; \
          if (k >= qtc_##tag##_start[c + 1]) continue; /* circuit c has no pass j */ \
          const long T = qtc_##tag##_tiles[k]; \
          qtc_##tag##pass(k, __VA_ARGS__, T * id / nt, T * (id + 1) / nt, 1); \
        } \
        _Pragma("omp barrier") \
      } \
    } \
  }
extern "C" void qtc_threads(int k) { omp_set_num_threads(k); }
extern "C" void qtc_forward(real* st, const real* th, const real* wn, real* P, int mode) {
  qtc_init(st);
  QTC_DRIVE(f, QTC_FPASSES, st, th)
  qtc_out(st, wn, P);
}
extern "C" void qtc_backward(real* st, real* lam, const real* th, const real* wn, const real* g,
                             double* gth, double* gw, int mode) {
  qtc_binit(st, lam, wn, g, gw);
  QTC_DRIVE(b, QTC_BPASSES, st, lam, th, gth)
}
// profiling: one thread, every step timed. out = [init, fwd passes..., out, binit, bwd passes...]
extern "C" void qtc_profile(real* st, real* lam, const real* th, const real* wn, real* P,
                            const real* g, double* gth, double* gw, double* out) {
  int o = 0;
  double t = omp_get_wtime(), u;
#define QTC_TICK u = omp_get_wtime(); out[o++] = u - t; t = u;
  omp_set_num_threads(1);
  qtc_init(st); QTC_TICK
  for (int k = 0; k < qtc_f_start[QTC_NCIRC]; ++k) { qtc_fpass(k, st, th, 0, qtc_f_tiles[k], 1); QTC_TICK }
  qtc_out(st, wn, P); QTC_TICK
  qtc_binit(st, lam, wn, g, gw); QTC_TICK
  for (int k = 0; k < qtc_b_start[QTC_NCIRC]; ++k) { qtc_bpass(k, st, lam, th, gth, 0, qtc_b_tiles[k], 1); QTC_TICK }
#undef QTC_TICK
}
#endif
