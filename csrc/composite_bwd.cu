// Volume compositing of packed samples, backward: one thread per ray (composite.cuh) -- a
// first loop sums gw_i w_i over the ray, a second walks forward with the suffix sum.
#include "composite.cuh"

namespace fmn {
namespace {

__global__ void composite_bwd_kernel(const float* __restrict__ sigmas, const float* __restrict__ rgbs,
                                     const float* __restrict__ t_starts, const float* __restrict__ t_ends,
                                     const int64_t* __restrict__ ray_start, int64_t n_rays,
                                     const float* __restrict__ weights, const float* __restrict__ g_rgb,
                                     const float* __restrict__ g_opacity, const float* __restrict__ g_depth,
                                     const float* __restrict__ g_weights, float* __restrict__ g_sigmas,
                                     float* __restrict__ g_rgbs) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n_rays) return;
  composite_ray_bwd(r, ray_start[r], ray_start[r + 1], sigmas, rgbs, t_starts, t_ends, weights, g_rgb, g_opacity,
                    g_depth, g_weights, g_sigmas, g_rgbs);
}

}  // namespace

cudaError_t composite_bwd(const float* sigmas, const float* rgbs, const float* t_starts, const float* t_ends,
                          const int64_t* ray_start, int64_t n_rays, const float* weights, const float* g_rgb,
                          const float* g_opacity, const float* g_depth, const float* g_weights, float* g_sigmas,
                          float* g_rgbs, cudaStream_t stream) {
  if (n_rays == 0) return cudaSuccess;
  composite_bwd_kernel<<<blocks_for(n_rays, 128), 128, 0, stream>>>(sigmas, rgbs, t_starts, t_ends, ray_start, n_rays,
                                                                    weights, g_rgb, g_opacity, g_depth, g_weights,
                                                                    g_sigmas, g_rgbs);
  return last_error();
}

}  // namespace fmn
