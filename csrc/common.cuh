// Helpers shared by the kernels (plain CUDA, no torch).
//
// Per-item work (one point, one ray) lives in FMN_HD functions that compile for the device
// and for the host, so tests/cuda_host/host_check.cu can run the same code serially on a
// CPU and compare it with the torch twins on machines without a GPU. The few operations
// that differ between the two sides are wrapped here: rounding intrinsics (host code is
// built with -ffp-contract=off, so plain operators round the same way), clz, atomics,
// fences and L1-bypassing loads (serial host code needs none of them).
#pragma once

#include <cmath>
#include <cstdint>
#include <cuda_runtime.h>

#if defined(__CUDACC__)
#define FMN_HD __host__ __device__ __forceinline__
#else
#define FMN_HD inline
#endif

namespace fmn {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

// Launch errors of the kernels just queued (cudaSuccess when nothing was launched).
inline cudaError_t last_error() { return cudaGetLastError(); }

FMN_HD float add_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
FMN_HD float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
FMN_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
FMN_HD float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
FMN_HD float fma_rn(float a, float b, float c) {
#ifdef __CUDA_ARCH__
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
FMN_HD int clz32(uint32_t v) {
#ifdef __CUDA_ARCH__
  return __clz(v);
#else
  return v == 0 ? 32 : __builtin_clz(v);
#endif
}
FMN_HD void atomic_add(float* p, float v) {
#ifdef __CUDA_ARCH__
  atomicAdd(p, v);
#else
  *p += v;
#endif
}
FMN_HD int atomic_add(int32_t* p, int32_t v) {
#ifdef __CUDA_ARCH__
  return atomicAdd(p, v);
#else
  const int32_t old = *p;
  *p += v;
  return old;
#endif
}
FMN_HD void thread_fence() {
#ifdef __CUDA_ARCH__
  __threadfence();
#endif
}
FMN_HD float load_cg(const float* p) {
#ifdef __CUDA_ARCH__
  return __ldcg(p);
#else
  return *p;
#endif
}

struct f3 {
  float x, y, z;
};

FMN_HD f3 load3(const float* p) { return {p[0], p[1], p[2]}; }
FMN_HD f3 sub(f3 a, f3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
FMN_HD f3 add(f3 a, f3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
FMN_HD f3 mul(f3 a, float s) { return {a.x * s, a.y * s, a.z * s}; }
FMN_HD float dot(f3 a, f3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

}  // namespace fmn
