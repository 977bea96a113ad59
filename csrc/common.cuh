// Small device helpers shared by the kernels (plain CUDA, no torch).
#pragma once

#include <cstdint>
#include <cuda_runtime.h>

namespace fmn {

constexpr int kThreads = 256;

inline unsigned int blocks_for(int64_t n, int threads = kThreads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

// Launch errors of the kernels just queued (cudaSuccess when nothing was launched).
inline cudaError_t last_error() { return cudaGetLastError(); }

struct f3 {
  float x, y, z;
};

__device__ __forceinline__ f3 load3(const float* p) { return {p[0], p[1], p[2]}; }
__device__ __forceinline__ f3 sub(f3 a, f3 b) { return {a.x - b.x, a.y - b.y, a.z - b.z}; }
__device__ __forceinline__ f3 add(f3 a, f3 b) { return {a.x + b.x, a.y + b.y, a.z + b.z}; }
__device__ __forceinline__ f3 mul(f3 a, float s) { return {a.x * s, a.y * s, a.z * s}; }
__device__ __forceinline__ float dot(f3 a, f3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }

}  // namespace fmn
