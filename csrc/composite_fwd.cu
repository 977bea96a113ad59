// Volume compositing of packed samples, forward: one thread per ray (composite.cuh).
#include "composite.cuh"

namespace fmn {
namespace {

__global__ void composite_fwd_kernel(const float* __restrict__ sigmas, const float* __restrict__ rgbs,
                                     const float* __restrict__ t_starts, const float* __restrict__ t_ends,
                                     const int64_t* __restrict__ ray_start, int64_t n_rays, float* __restrict__ rgb,
                                     float* __restrict__ opacity, float* __restrict__ depth,
                                     float* __restrict__ weights) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n_rays) return;
  composite_ray_fwd(r, ray_start[r], ray_start[r + 1], sigmas, rgbs, t_starts, t_ends, rgb, opacity, depth, weights);
}

}  // namespace

cudaError_t composite_fwd(const float* sigmas, const float* rgbs, const float* t_starts, const float* t_ends,
                          const int64_t* ray_start, int64_t n_rays, float* rgb, float* opacity, float* depth,
                          float* weights, cudaStream_t stream) {
  if (n_rays == 0) return cudaSuccess;
  composite_fwd_kernel<<<blocks_for(n_rays, 128), 128, 0, stream>>>(sigmas, rgbs, t_starts, t_ends, ray_start, n_rays,
                                                                    rgb, opacity, depth, weights);
  return last_error();
}

}  // namespace fmn
