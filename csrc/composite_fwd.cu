// Volume compositing of packed samples, forward: one thread per ray walks its samples
//   tau_j = sigma_j (t1_j - t0_j), alpha_j = 1 - exp(-tau_j), w_j = T_j alpha_j,
//   T_{j+1} = T_j exp(-tau_j); rgb = sum w c, opacity = sum w, depth = sum w (t0 + t1) / 2.
#include "common.cuh"

namespace fmn {
namespace {

__global__ void composite_fwd_kernel(const float* __restrict__ sigmas, const float* __restrict__ rgbs,
                                     const float* __restrict__ t_starts, const float* __restrict__ t_ends,
                                     const int64_t* __restrict__ ray_start, int64_t n_rays, float* __restrict__ rgb,
                                     float* __restrict__ opacity, float* __restrict__ depth,
                                     float* __restrict__ weights) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n_rays) return;
  float trans = 1.0f, c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, op = 0.0f, dep = 0.0f;
  for (int64_t j = ray_start[r], e = ray_start[r + 1]; j < e; ++j) {
    const float t0 = t_starts[j], t1 = t_ends[j];
    const float decay = expf(-sigmas[j] * (t1 - t0));
    const float w = trans * (1.0f - decay);
    weights[j] = w;
    c0 += w * rgbs[j * 3];
    c1 += w * rgbs[j * 3 + 1];
    c2 += w * rgbs[j * 3 + 2];
    op += w;
    dep += w * (0.5f * (t0 + t1));
    trans *= decay;
  }
  rgb[r * 3] = c0;
  rgb[r * 3 + 1] = c1;
  rgb[r * 3 + 2] = c2;
  opacity[r] = op;
  depth[r] = dep;
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
