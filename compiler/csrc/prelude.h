// qtc kernel prelude (qtc/compiler/csrc/prelude.h): the macros that make one kernel text
// a CUDA file and a C++ file. The generated lines above it define QTC_M, QTC_W, real,
// QTC_COS, QTC_SIN, qtc_lane_index, QTC_LANE_XOR(m) and QTC_PM_ROWS.
#define QTC_RESTRICT __restrict__
#ifdef __CUDACC__
#define QTC_KERNEL extern "C" __global__ void
#define QTC_REGION {
#define QTC_END }
typedef real qv;
typedef double qacc;
#define QTC_LANE ((int)(threadIdx.x & (QTC_W - 1)))
// the QTC_W threads of this lane group (they always iterate together)
#define QTC_GMASK ((0xffffffffu >> (32 - QTC_W)) << (threadIdx.x & 31u & ~(unsigned)(QTC_W - 1)))
#define QTC_FN static __device__ void
#define QTC_ELEMS(i, count) \
  for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < (long)(count); \
       i += (long)gridDim.x * blockDim.x)
#define QTC_BLOCKS(b, count) \
  for (long _i = blockIdx.x * (long)blockDim.x + threadIdx.x; _i < ((long)(count) << QTC_M); \
       _i += (long)gridDim.x * blockDim.x) \
    for (long b = _i >> QTC_M, _once = 1; _once; _once = 0)
typedef long qvi;
#define QTC_GATHER(p, y, lm) ((p)[(y) ^ (lm)])
__device__ __forceinline__ long qtc_lanemap(long c0, long c1, long c2) {
  const int j = QTC_LANE;
  return ((j & 1) ? c0 : 0) ^ ((j & 2) ? c1 : 0) ^ ((j & 4) ? c2 : 0);
}
#define QTC_LD(p, y) ((p)[(y) + QTC_LANE])
#define QTC_ST(p, y, v) ((p)[(y) + QTC_LANE] = (v))
#define QTC_LX(v, m) __shfl_xor_sync(QTC_GMASK, (v), (m), QTC_W)
#define QTC_PAR(y) (__popcll((unsigned long long)(y)) & 1)
#define QTC_ACC(v) ((double)(v))
#define QTC_HSUM(a) (a)
#define QTC_ZERO ((real)0)
__device__ __forceinline__ real qtc_sel1(int m, real x0, real x1) {
  return (__popc(m & QTC_LANE) & 1) ? x1 : x0;
}
__device__ __forceinline__ real qtc_sel2(int ma, int mb, real x0, real x1, real x2, real x3) {
  const int l = (__popc(ma & QTC_LANE) & 1) | ((__popc(mb & QTC_LANE) & 1) << 1);
  return l == 0 ? x0 : l == 1 ? x1 : l == 2 ? x2 : x3;
}
// every thread of the block reaches a reduction: reduce over the warp, one atomic per warp
__device__ __forceinline__ void qtc_add(double* p, double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) atomicAdd(p, v);
}
#else
#include <math.h>
#include <omp.h>
#define QTC_KERNEL extern "C" void
#define QTC_REGION _Pragma("omp parallel") {
#define QTC_END }
typedef real qv __attribute__((vector_size(sizeof(real) * QTC_W)));
typedef real qvu __attribute__((vector_size(sizeof(real) * QTC_W), aligned(sizeof(real))));
typedef qtc_lane_index qvi __attribute__((vector_size(sizeof(real) * QTC_W)));
typedef double qacc __attribute__((vector_size(sizeof(double) * QTC_W)));
#define QTC_FN void
#define QTC_ELEMS(i, count) _Pragma("omp for nowait") for (long i = 0; i < (long)(count); ++i)
#define QTC_BLOCKS(b, count) _Pragma("omp for nowait") for (long b = 0; b < (long)(count); ++b)
#define QTC_LD(p, y) (*(const qvu*)((p) + (y)))
#define QTC_ST(p, y, v) (*(qvu*)((p) + (y)) = (v))
#define QTC_LX(v, m) __builtin_shuffle((v), (qvi){QTC_LANE_XOR(m)})
#define QTC_PAR(y) __builtin_parityl((unsigned long)(y))
#define QTC_ACC(v) __builtin_convertvector((v), qacc)
#define QTC_ZERO ((qv){})
// qtc_pm[m][j] = parity(m & j): which lanes see a label flip for lane mask m
static const qvi qtc_pm[QTC_W] = {QTC_PM_ROWS};
static inline qv qtc_sel1(int m, real x0, real x1) { return qtc_pm[m] ? ((qv){} + x1) : ((qv){} + x0); }
static inline qv qtc_sel2(int ma, int mb, real x0, real x1, real x2, real x3) {
  qv r;
  for (int j = 0; j < QTC_W; ++j) {
    const int l = __builtin_parity(ma & j) | (__builtin_parity(mb & j) << 1);
    r[j] = l == 0 ? x0 : l == 1 ? x1 : l == 2 ? x2 : x3;
  }
  return r;
}
static inline qvi qtc_lanemap(long c0, long c1, long c2) {
  qvi r;
  for (int j = 0; j < QTC_W; ++j) r[j] = ((j & 1) ? c0 : 0) ^ ((j & 2) ? c1 : 0) ^ ((j & 4) ? c2 : 0);
  return r;
}
static inline qv QTC_GATHER(const real* p, long y, qvi lm) {
  qv r;
  for (int j = 0; j < QTC_W; ++j) r[j] = p[y ^ lm[j]];
  return r;
}
static inline double QTC_HSUM(qacc a) {
  double s = 0;
  for (int j = 0; j < QTC_W; ++j) s += a[j];
  return s;
}
static inline void qtc_add(double* p, double v) {
  _Pragma("omp atomic")
  *p += v;
}
#endif
