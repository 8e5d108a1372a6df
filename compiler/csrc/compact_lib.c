// qtc compact kernel library (qtc/compiler/csrc/compact_lib.c): the CPU entry points of
// compact.h, instantiated once. The renderer puts this after the prelude's dtype and lane
// parameters and compact.h; the text depends on no program, so runtime/cache.py compiles
// it once per (dtype, lanes, compiler, machine) and links the object into every program's kernels.
#ifndef __CUDACC__
extern "C" void qtc_lib_fpass(const qtc_pass* P, const qtc_op* O, const real* G, const qtc_form* F,
                              real* st, const real* th, long t0, long t1, long step) {
  qtc_fpass_run(*P, O, G, F, st, th, t0, t1, step);
}
extern "C" void qtc_lib_bpass(const qtc_pass* P, const qtc_op* O, const real* G, const qtc_form* F,
                              real* st, real* lam, const real* th, double* gth, long t0, long t1,
                              long step) {
  qtc_bpass_run(*P, O, G, F, st, lam, th, gth, t0, t1, step);
}
#endif
