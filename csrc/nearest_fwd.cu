// Exact nearest triangle of each point in its own mesh's LBVH (bvh_build.cu); the
// traversal is nearest_point in bvh.cuh. Points are visited in `order` (sorted by mesh,
// so neighbouring threads walk the same tree) when given.
#include "bvh.cuh"

namespace fmn {
namespace {

__global__ void nearest_kernel(const float* __restrict__ points, const int64_t* __restrict__ slots,
                               const int64_t* __restrict__ order, int64_t n, const BvhNode* __restrict__ nodes,
                               const float* __restrict__ tris, const int32_t* __restrict__ leaf_face, int T,
                               int64_t* __restrict__ face_out, float* __restrict__ dist_out) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (tid >= n) return;
  const int64_t i = order ? order[tid] : tid;
  int face;
  float d2;
  nearest_point(load3(points + i * 3), slots[i], nodes, tris, leaf_face, T, &face, &d2);
  face_out[i] = face;
  dist_out[i] = sqrtf(d2);
}

}  // namespace

cudaError_t nearest_triangle(const float* points, const int64_t* slots, const int64_t* order, int64_t n,
                             const BvhNode* nodes, const float* tris, const int32_t* leaf_face, int K, int T,
                             int64_t* face, float* dist, cudaStream_t stream) {
  (void)K;
  if (n == 0) return cudaSuccess;
  if (T < 1) return cudaErrorInvalidValue;
  nearest_kernel<<<blocks_for(n, 128), 128, 0, stream>>>(points, slots, order, n, nodes, tris, leaf_face, T, face,
                                                         dist);
  return last_error();
}

}  // namespace fmn
