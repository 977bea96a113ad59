// Volume compositing of packed samples, backward. With the per-sample cotangent of w_j
//   gw_j = <g_rgb, c_j> + g_opacity + g_depth m_j + g_weights_j      (m_j: midpoint)
// and dw_j/dtau_j = T_{j+1}, dw_i/dtau_j = -w_i (i > j):
//   dL/dsigma_j = (t1_j - t0_j) (gw_j T_{j+1} - sum_{i>j} gw_i w_i),   dL/dc_j = w_j g_rgb.
// One thread per ray: a first loop sums gw_i w_i, a second walks forward with the suffix.
#include "common.cuh"

namespace fmn {
namespace {

__device__ __forceinline__ float sample_gw(int64_t j, int64_t r, const float* __restrict__ rgbs,
                                           const float* __restrict__ t_starts, const float* __restrict__ t_ends,
                                           const float* __restrict__ g_rgb, const float* __restrict__ g_opacity,
                                           const float* __restrict__ g_depth, const float* __restrict__ g_weights) {
  float gw = g_rgb[r * 3] * rgbs[j * 3] + g_rgb[r * 3 + 1] * rgbs[j * 3 + 1] + g_rgb[r * 3 + 2] * rgbs[j * 3 + 2];
  if (g_opacity) gw += g_opacity[r];
  if (g_depth) gw += g_depth[r] * (0.5f * (t_starts[j] + t_ends[j]));
  if (g_weights) gw += g_weights[j];
  return gw;
}

__global__ void composite_bwd_kernel(const float* __restrict__ sigmas, const float* __restrict__ rgbs,
                                     const float* __restrict__ t_starts, const float* __restrict__ t_ends,
                                     const int64_t* __restrict__ ray_start, int64_t n_rays,
                                     const float* __restrict__ weights, const float* __restrict__ g_rgb,
                                     const float* __restrict__ g_opacity, const float* __restrict__ g_depth,
                                     const float* __restrict__ g_weights, float* __restrict__ g_sigmas,
                                     float* __restrict__ g_rgbs) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n_rays) return;
  const int64_t b = ray_start[r], e = ray_start[r + 1];
  float total = 0.0f;
  for (int64_t j = b; j < e; ++j)
    total += weights[j] * sample_gw(j, r, rgbs, t_starts, t_ends, g_rgb, g_opacity, g_depth, g_weights);
  float trans = 1.0f, prefix = 0.0f;
  for (int64_t j = b; j < e; ++j) {
    const float delta = t_ends[j] - t_starts[j];
    trans *= expf(-sigmas[j] * delta);  // T_{j+1}
    const float w = weights[j];
    const float gw = sample_gw(j, r, rgbs, t_starts, t_ends, g_rgb, g_opacity, g_depth, g_weights);
    prefix += w * gw;
    g_sigmas[j] = delta * (gw * trans - (total - prefix));
    g_rgbs[j * 3] = w * g_rgb[r * 3];
    g_rgbs[j * 3 + 1] = w * g_rgb[r * 3 + 1];
    g_rgbs[j * 3 + 2] = w * g_rgb[r * 3 + 2];
  }
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
