// LBVH construction, one tree per mesh, all meshes at once (K*T triangles in parallel);
// the per-item steps are in bvh.cuh:
//   1. bvh_morton_keys: key = (mesh << 32) | Morton code of the triangle centroid in the
//      mesh's box. (The caller sorts the keys; sorting by mesh first makes every mesh a
//      contiguous run of T sorted leaves.)
//   2. bvh_build: leaves (triangle vertices in Morton order), internal nodes by Karras'
//      radix-tree rule (ties of equal codes broken by leaf position), then a bottom-up
//      refit: each leaf walks up and the second thread to reach a node fills its box.
#include "bvh.cuh"

namespace fmn {
namespace {

__global__ void morton_kernel(const float* __restrict__ verts, const int32_t* __restrict__ faces,
                              const float* __restrict__ box_lo, const float* __restrict__ box_hi, int K, int V, int T,
                              int64_t* __restrict__ keys) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < static_cast<int64_t>(K) * T) morton_key(i, verts, faces, box_lo, box_hi, V, T, keys);
}

__global__ void leaves_kernel(const int64_t* __restrict__ perm, const float* __restrict__ verts,
                              const int32_t* __restrict__ faces, int K, int V, int T, float* __restrict__ tris,
                              int32_t* __restrict__ leaf_face) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < static_cast<int64_t>(K) * T) leaf_setup(i, perm, verts, faces, V, T, tris, leaf_face);
}

__global__ void internal_kernel(const int64_t* __restrict__ sorted_keys, int K, int T, BvhNode* __restrict__ nodes,
                                int32_t* __restrict__ node_parent, int32_t* __restrict__ leaf_parent) {
  const int64_t gi = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gi < static_cast<int64_t>(K) * (T - 1)) internal_node(gi, sorted_keys, T, nodes, node_parent, leaf_parent);
}

__global__ void refit_kernel(const float* __restrict__ tris, const int32_t* __restrict__ node_parent,
                             const int32_t* __restrict__ leaf_parent, int K, int T, BvhNode* nodes, int32_t* flags) {
  const int64_t gi = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gi < static_cast<int64_t>(K) * T) refit_leaf(gi, tris, node_parent, leaf_parent, T, nodes, flags);
}

}  // namespace

cudaError_t bvh_morton_keys(const float* verts, const int32_t* faces, const float* box_lo, const float* box_hi, int K,
                            int V, int T, int64_t* keys, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(K) * T;
  if (n == 0) return cudaSuccess;
  morton_kernel<<<blocks_for(n), kThreads, 0, stream>>>(verts, faces, box_lo, box_hi, K, V, T, keys);
  return last_error();
}

cudaError_t bvh_build(const int64_t* sorted_keys, const int64_t* perm, const float* verts, const int32_t* faces, int K,
                      int V, int T, BvhNode* nodes, float* tris, int32_t* leaf_face, int32_t* node_parent,
                      int32_t* leaf_parent, int32_t* flags, cudaStream_t stream) {
  const int64_t n_leaves = static_cast<int64_t>(K) * T;
  if (n_leaves == 0) return cudaSuccess;
  leaves_kernel<<<blocks_for(n_leaves), kThreads, 0, stream>>>(perm, verts, faces, K, V, T, tris, leaf_face);
  if (T < 2) return last_error();  // a single triangle: no internal node, the query tests the leaf
  const int64_t n_int = static_cast<int64_t>(K) * (T - 1);
  cudaError_t err = cudaMemsetAsync(flags, 0, sizeof(int32_t) * n_int, stream);
  if (err != cudaSuccess) return err;
  internal_kernel<<<blocks_for(n_int), kThreads, 0, stream>>>(sorted_keys, K, T, nodes, node_parent, leaf_parent);
  refit_kernel<<<blocks_for(n_leaves), kThreads, 0, stream>>>(tris, node_parent, leaf_parent, K, T, nodes, flags);
  return last_error();
}

}  // namespace fmn
