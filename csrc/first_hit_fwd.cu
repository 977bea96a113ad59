// First hit of each ray on its own mesh's LBVH (bvh_build.cu): the mesh-guided early
// termination of the avatar's marcher. The traversal is first_hit_ray in bvh.cuh.
#include "bvh.cuh"

namespace fmn {
namespace {

__global__ void first_hit_kernel(const float* __restrict__ origins, const float* __restrict__ dirs,
                                 const int64_t* __restrict__ slots, int64_t n, const BvhNode* __restrict__ nodes,
                                 const float* __restrict__ tris, int T, float* __restrict__ t_out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float t = first_hit_ray(load3(origins + i * 3), load3(dirs + i * 3), slots[i], nodes, tris, T);
  t_out[i] = t == FLT_MAX ? INFINITY : t;
}

}  // namespace

cudaError_t ray_first_hit(const float* origins, const float* dirs, const int64_t* slots, int64_t n,
                          const BvhNode* nodes, const float* tris, int K, int T, float* t, cudaStream_t stream) {
  (void)K;
  if (n == 0) return cudaSuccess;
  if (T < 1) return cudaErrorInvalidValue;
  first_hit_kernel<<<blocks_for(n, 128), 128, 0, stream>>>(origins, dirs, slots, n, nodes, tris, T, t);
  return last_error();
}

}  // namespace fmn
