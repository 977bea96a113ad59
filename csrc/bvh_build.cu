// LBVH construction, one tree per mesh, all meshes at once (K*T triangles in parallel):
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
  if (i >= static_cast<int64_t>(K) * T) return;
  const int k = static_cast<int>(i / T), t = static_cast<int>(i % T);
  const float* vk = verts + static_cast<int64_t>(k) * V * 3;
  float c[3];
  for (int d = 0; d < 3; ++d) {
    const float s = vk[faces[t * 3] * 3 + d] + vk[faces[t * 3 + 1] * 3 + d] + vk[faces[t * 3 + 2] * 3 + d];
    const float lo = box_lo[k * 3 + d], ext = box_hi[k * 3 + d] - lo;
    c[d] = ext > 0.0f ? (s * (1.0f / 3.0f) - lo) / ext : 0.5f;
  }
  keys[i] = (static_cast<int64_t>(k) << 32) | static_cast<int64_t>(morton30(c[0], c[1], c[2]));
}

__global__ void leaves_kernel(const int64_t* __restrict__ perm, const float* __restrict__ verts,
                              const int32_t* __restrict__ faces, int K, int V, int T, float* __restrict__ tris,
                              int32_t* __restrict__ leaf_face) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= static_cast<int64_t>(K) * T) return;
  const int k = static_cast<int>(i / T);
  const int t = static_cast<int>(perm[i] - static_cast<int64_t>(k) * T);
  leaf_face[i] = t;
  const float* vk = verts + static_cast<int64_t>(k) * V * 3;
  for (int v = 0; v < 3; ++v)
    for (int d = 0; d < 3; ++d) tris[i * 9 + v * 3 + d] = vk[faces[t * 3 + v] * 3 + d];
}

// Length of the common prefix of leaves i and j (codes, then positions), -1 outside [0, n).
__device__ __forceinline__ int delta(const int64_t* __restrict__ keys, int n, int i, int64_t j) {
  if (j < 0 || j >= n) return -1;
  const uint32_t a = static_cast<uint32_t>(keys[i]), b = static_cast<uint32_t>(keys[j]);
  if (a == b) return 32 + __clz(static_cast<uint32_t>(i) ^ static_cast<uint32_t>(j));
  return __clz(a ^ b);
}

__global__ void internal_kernel(const int64_t* __restrict__ sorted_keys, int K, int T, BvhNode* __restrict__ nodes,
                                int32_t* __restrict__ node_parent, int32_t* __restrict__ leaf_parent) {
  const int64_t gi = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int n_int = T - 1;
  if (gi >= static_cast<int64_t>(K) * n_int) return;
  const int k = static_cast<int>(gi / n_int), i = static_cast<int>(gi % n_int);
  const int64_t* keys = sorted_keys + static_cast<int64_t>(k) * T;
  // direction and extent of the range covered by node i
  const int d = (delta(keys, T, i, i + 1) - delta(keys, T, i, i - 1)) >= 0 ? 1 : -1;
  const int dmin = delta(keys, T, i, static_cast<int64_t>(i) - d);
  int64_t lmax = 2;
  while (delta(keys, T, i, i + lmax * d) > dmin) lmax *= 2;
  int64_t len = 0;
  for (int64_t t = lmax / 2; t >= 1; t /= 2)
    if (delta(keys, T, i, i + (len + t) * d) > dmin) len += t;
  const int j = static_cast<int>(i + len * d);
  // split position: the last leaf sharing more than delta(i, j) leading bits with i
  const int dnode = delta(keys, T, i, j);
  int64_t s = 0, t = len;
  do {
    t = (t + 1) / 2;
    if (delta(keys, T, i, i + (s + t) * d) > dnode) s += t;
  } while (t > 1);
  const int gamma = static_cast<int>(i + s * d + (d < 0 ? -1 : 0));
  const int lo = min(i, j), hi = max(i, j);
  BvhNode* nd = nodes + static_cast<int64_t>(k) * n_int + i;
  const int64_t leaf0 = static_cast<int64_t>(k) * T, node0 = static_cast<int64_t>(k) * n_int;
  // parent links carry the side in bit 0: (parent << 1) | side
  if (lo == gamma) {
    nd->child[0] = ~gamma;
    leaf_parent[leaf0 + gamma] = (i << 1) | 0;
  } else {
    nd->child[0] = gamma;
    node_parent[node0 + gamma] = (i << 1) | 0;
  }
  if (hi == gamma + 1) {
    nd->child[1] = ~(gamma + 1);
    leaf_parent[leaf0 + gamma + 1] = (i << 1) | 1;
  } else {
    nd->child[1] = gamma + 1;
    node_parent[node0 + gamma + 1] = (i << 1) | 1;
  }
  if (i == 0) node_parent[node0] = -1;  // root
}

__global__ void refit_kernel(const float* __restrict__ tris, const int32_t* __restrict__ node_parent,
                             const int32_t* __restrict__ leaf_parent, int K, int T, BvhNode* nodes,
                             int32_t* flags) {
  const int64_t gi = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (gi >= static_cast<int64_t>(K) * T) return;
  const int k = static_cast<int>(gi / T);
  const int n_int = T - 1;
  const float* tri = tris + gi * 9;
  float lo[3], hi[3];
  for (int d = 0; d < 3; ++d) {
    lo[d] = fminf(fminf(tri[d], tri[3 + d]), tri[6 + d]);
    hi[d] = fmaxf(fmaxf(tri[d], tri[3 + d]), tri[6 + d]);
  }
  BvhNode* base = nodes + static_cast<int64_t>(k) * n_int;
  int32_t* fl = flags + static_cast<int64_t>(k) * n_int;
  const int32_t* np = node_parent + static_cast<int64_t>(k) * n_int;
  int link = leaf_parent[gi];
  while (link >= 0) {
    const int p = link >> 1, side = link & 1;
    BvhNode* nd = base + p;
    for (int d = 0; d < 3; ++d) {
      nd->lo[side][d] = lo[d];
      nd->hi[side][d] = hi[d];
    }
    __threadfence();
    if (atomicAdd(fl + p, 1) == 0) return;  // the sibling's thread finishes this node
    __threadfence();
    for (int d = 0; d < 3; ++d) {  // read the sibling's box from L2 (bypass L1)
      lo[d] = fminf(lo[d], __ldcg(&nd->lo[1 - side][d]));
      hi[d] = fmaxf(hi[d], __ldcg(&nd->hi[1 - side][d]));
    }
    link = np[p];
  }
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
