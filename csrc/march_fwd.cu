// Occupancy-grid ray marching into packed samples, two passes over the rays (march_ray in
// march.cuh): count (samples kept per ray), then -- after the caller's exclusive scan of
// the counts -- fill (each ray writes its samples at its offset: the output is sorted by ray).
#include "march.cuh"

namespace fmn {
namespace {

__global__ void count_kernel(const float* __restrict__ origins, const float* __restrict__ dirs, int64_t n,
                             const float* __restrict__ aabb_g, const uint8_t* __restrict__ grid, int R, float dt,
                             int max_steps, int64_t* __restrict__ counts) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n) return;
  float aabb[6];
  for (int a = 0; a < 6; ++a) aabb[a] = aabb_g[a];
  counts[r] = march_ray(r, origins, dirs, aabb, grid, R, dt, 0.0f, max_steps, 0, nullptr, nullptr, nullptr);
}

__global__ void fill_kernel(const float* __restrict__ origins, const float* __restrict__ dirs, int64_t n,
                            const float* __restrict__ aabb_g, const uint8_t* __restrict__ grid, int R, float dt,
                            float half_dt, int max_steps, const int64_t* __restrict__ offsets,
                            int64_t* __restrict__ ray_indices, float* __restrict__ t_starts,
                            float* __restrict__ t_ends) {
  const int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (r >= n) return;
  float aabb[6];
  for (int a = 0; a < 6; ++a) aabb[a] = aabb_g[a];
  march_ray(r, origins, dirs, aabb, grid, R, dt, half_dt, max_steps, offsets[r], ray_indices, t_starts, t_ends);
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
