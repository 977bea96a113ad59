// Occupancy-grid ray marching into packed samples, in two passes over the rays:
// count (samples kept per ray), then -- after an exclusive scan of the counts by the
// caller -- fill (each ray writes its samples at its offset, so the output is sorted by ray).
//
// Every float operation uses an explicit rounding intrinsic so nvcc cannot contract it
// into an fma: sample positions and cells then equal the torch twin's bit for bit
// (march_rays_torch in fastminerf/ops/march.py), and so does the set of samples.
#include "common.cuh"

namespace fmn {
namespace {

struct RaySpan {
  float tn, tf;
};

// Entry/exit of the box as ray_aabb(): t_near clamped at 0; |d| <= 1e-12 counts as +1e-12.
__device__ __forceinline__ RaySpan ray_box(const float o[3], const float d[3], const float* aabb) {
  float tn = -INFINITY, tf = INFINITY;
#pragma unroll
  for (int a = 0; a < 3; ++a) {
    const float dd = fabsf(d[a]) > 1e-12f ? d[a] : 1e-12f;
    const float inv = __fdiv_rn(1.0f, dd);
    const float t0 = __fmul_rn(__fsub_rn(aabb[a], o[a]), inv);
    const float t1 = __fmul_rn(__fsub_rn(aabb[3 + a], o[a]), inv);
    tn = fmaxf(tn, fminf(t0, t1));
    tf = fminf(tf, fmaxf(t0, t1));
  }
  return {fmaxf(tn, 0.0f), tf};
}

// Occupancy of the sample at t (grid_lookup()); false outside the box.
__device__ __forceinline__ bool occupied(const float o[3], const float d[3], float t, const float* aabb,
                                         const uint8_t* __restrict__ grid, int R) {
  int ijk[3];
#pragma unroll
  for (int a = 0; a < 3; ++a) {
    const float p = __fadd_rn(o[a], __fmul_rn(d[a], t));
    const float rel = __fdiv_rn(__fsub_rn(p, aabb[a]), __fsub_rn(aabb[3 + a], aabb[a]));
    if (!(rel >= 0.0f && rel < 1.0f)) return false;
    ijk[a] = min(max(static_cast<int>(__fmul_rn(rel, static_cast<float>(R))), 0), R - 1);
  }
  return grid[(static_cast<int64_t>(ijk[0]) * R + ijk[1]) * R + ijk[2]] != 0;
}

__device__ __forceinline__ float sample_t(float tn, int k, float dt) {
  return __fadd_rn(tn, __fmul_rn(static_cast<float>(k) + 0.5f, dt));
}

__global__ void count_kernel(const float* __restrict__ origins, const float* __restrict__ dirs, int64_t n,
                             const float* __restrict__ aabb_g, const uint8_t* __restrict__ grid, int R, float dt,
                             int max_steps, int64_t* __restrict__ counts) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n) return;
  float aabb[6];
#pragma unroll
  for (int a = 0; a < 6; ++a) aabb[a] = aabb_g[a];
  const float o[3] = {origins[r * 3], origins[r * 3 + 1], origins[r * 3 + 2]};
  const float d[3] = {dirs[r * 3], dirs[r * 3 + 1], dirs[r * 3 + 2]};
  const RaySpan s = ray_box(o, d, aabb);
  int64_t c = 0;
  for (int k = 0; k < max_steps; ++k) {
    const float t = sample_t(s.tn, k, dt);
    if (!(t < s.tf)) break;  // t never decreases with k
    c += occupied(o, d, t, aabb, grid, R);
  }
  counts[r] = c;
}

__global__ void fill_kernel(const float* __restrict__ origins, const float* __restrict__ dirs, int64_t n,
                            const float* __restrict__ aabb_g, const uint8_t* __restrict__ grid, int R, float dt,
                            float half_dt, int max_steps, const int64_t* __restrict__ offsets,
                            int64_t* __restrict__ ray_indices, float* __restrict__ t_starts,
                            float* __restrict__ t_ends) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n) return;
  float aabb[6];
#pragma unroll
  for (int a = 0; a < 6; ++a) aabb[a] = aabb_g[a];
  const float o[3] = {origins[r * 3], origins[r * 3 + 1], origins[r * 3 + 2]};
  const float d[3] = {dirs[r * 3], dirs[r * 3 + 1], dirs[r * 3 + 2]};
  const RaySpan s = ray_box(o, d, aabb);
  int64_t w = offsets[r];
  for (int k = 0; k < max_steps; ++k) {
    const float t = sample_t(s.tn, k, dt);
    if (!(t < s.tf)) break;
    if (occupied(o, d, t, aabb, grid, R)) {
      ray_indices[w] = r;
      t_starts[w] = __fsub_rn(t, half_dt);
      t_ends[w] = __fadd_rn(t, half_dt);
      ++w;
    }
  }
}

}  // namespace

cudaError_t march_count(const float* origins, const float* dirs, int64_t n_rays, const float* aabb,
                        const uint8_t* grid, int R, float dt, int max_steps, int64_t* counts, cudaStream_t stream) {
  if (n_rays == 0) return cudaSuccess;
  count_kernel<<<blocks_for(n_rays), kThreads, 0, stream>>>(origins, dirs, n_rays, aabb, grid, R, dt, max_steps,
                                                             counts);
  return last_error();
}

cudaError_t march_fill(const float* origins, const float* dirs, int64_t n_rays, const float* aabb, const uint8_t* grid,
                       int R, float dt, float half_dt, int max_steps, const int64_t* offsets, int64_t* ray_indices,
                       float* t_starts, float* t_ends, cudaStream_t stream) {
  if (n_rays == 0) return cudaSuccess;
  fill_kernel<<<blocks_for(n_rays), kThreads, 0, stream>>>(origins, dirs, n_rays, aabb, grid, R, dt, half_dt,
                                                            max_steps, offsets, ray_indices, t_starts, t_ends);
  return last_error();
}

}  // namespace fmn
