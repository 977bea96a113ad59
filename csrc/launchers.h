// Host entry points of the fastminerf kernels: plain C++ over raw device pointers.
//
// Every .cu file implements some of these; the torch adapters (torch_ops.cpp) check
// tensors, allocate outputs and call them on the current stream. Nothing here includes
// torch, so the kernels compile (and are compile-checked in CI) with plain `nvcc -c`.
// Each launcher returns cudaGetLastError() after its launches (cudaSuccess when n == 0).
#pragma once

#include <cstdint>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

namespace fmn {

// ------------------------------------------------------------------ hash grid
constexpr int kMaxLevels = 32;

// Per-level geometry of a hash grid, computed on the host from HashGridSpec.layout
// (scale is the float32 value of the torch twin; hashed bit l: res_l^3 > size_l).
struct GridLevels {
  int n_levels;
  uint32_t hashed;  // bit l set: level l uses the xor-prime hash
  float scale[kMaxLevels];
  uint32_t resolution[kMaxLevels];
  uint32_t size[kMaxLevels];
  uint32_t offset[kMaxLevels];
};

// x [n, 3] in [0,1]^3, table [P, F] (F in 1, 2, 4, 8) -> out [n, L*F] float32, level-major.
cudaError_t hash_grid_fwd(const float* x, const float* table, int64_t n, int n_features, const GridLevels& lv,
                          float* out, cudaStream_t stream);
cudaError_t hash_grid_fwd(const float* x, const __half* table, int64_t n, int n_features, const GridLevels& lv,
                          float* out, cudaStream_t stream);
// Absolute table rows [n, L, 8] (int64) of the 8 corners of every level (tests, debugging).
cudaError_t hash_grid_rows(const float* x, int64_t n, const GridLevels& lv, int64_t* rows, cudaStream_t stream);
// grad_table [P, F] float32 (zeroed by the caller) += scatter of grad_out [n, L*F].
cudaError_t hash_grid_bwd_table(const float* x, const float* grad_out, int64_t n, int n_features,
                                const GridLevels& lv, float* grad_table, cudaStream_t stream);
// grad_x [n, 3] = d out / d x contracted with grad_out [n, L*F] (written, not accumulated).
cudaError_t hash_grid_bwd_x(const float* x, const float* table, const float* grad_out, int64_t n, int n_features,
                            const GridLevels& lv, float* grad_x, cudaStream_t stream);
cudaError_t hash_grid_bwd_x(const float* x, const __half* table, const float* grad_out, int64_t n, int n_features,
                            const GridLevels& lv, float* grad_x, cudaStream_t stream);

// ------------------------------------------------------------------ nearest triangle (LBVH)
// One binary radix tree (Karras 2012) per mesh over its T triangles. Internal node i of mesh
// k lives at nodes[k*(T-1) + i]; it stores both children's boxes, so a visit is one 64-byte
// load. child >= 0: internal node; child < 0: leaf ~child (position in the Morton order).
struct alignas(16) BvhNode {
  float lo[2][3];
  float hi[2][3];
  int child[2];
  int pad[2];
};
static_assert(sizeof(BvhNode) == 64, "BvhNode must be 64 bytes");

// keys [K*T] = (k << 32) | morton30(centroid of triangle t of mesh k, in mesh k's box).
// box_lo / box_hi: [K, 3] vertex bounds of each mesh. faces [T, 3] int32, verts [K, V, 3].
cudaError_t bvh_morton_keys(const float* verts, const int32_t* faces, const float* box_lo, const float* box_hi,
                            int K, int V, int T, int64_t* keys, cudaStream_t stream);
// From keys sorted ascending and perm (position in the unsorted [K*T] order): leaf triangles
// tris [K*T, 9] and their face ids leaf_face [K*T], internal nodes [K*(T-1)] with refitted
// boxes. Scratch: node_parent [K*(T-1)], leaf_parent [K*T], flags [K*(T-1)] (zeroed here).
cudaError_t bvh_build(const int64_t* sorted_keys, const int64_t* perm, const float* verts, const int32_t* faces,
                      int K, int V, int T, BvhNode* nodes, float* tris, int32_t* leaf_face, int32_t* node_parent,
                      int32_t* leaf_parent, int32_t* flags, cudaStream_t stream);
// Exact nearest triangle of points [n, 3] in mesh slots[i] (int64). order: optional [n]
// permutation (points visited in that order, e.g. sorted by slot) or nullptr.
// Ties (equal squared distance) go to the smaller face index, as the torch twin's argmin.
cudaError_t nearest_triangle(const float* points, const int64_t* slots, const int64_t* order, int64_t n,
                             const BvhNode* nodes, const float* tris, const int32_t* leaf_face, int K, int T,
                             int64_t* face, float* dist, cudaStream_t stream);

// Distance t [n] along rays origins, dirs [n, 3] to the first triangle of mesh slots[i] they
// hit (inf when none), over the same LBVHs (Möller–Trumbore as first_hit_torch).
cudaError_t ray_first_hit(const float* origins, const float* dirs, const int64_t* slots, int64_t n,
                          const BvhNode* nodes, const float* tris, int K, int T, float* t, cudaStream_t stream);

// ------------------------------------------------------------------ ray marching
// Pass 1: samples per ray. Sample k of a ray sits at t = t_near + (k + 0.5) * dt (k < max_steps,
// t < t_far) and is kept when its cell of grid [R^3] (uint8, flat i*R*R + j*R + k) is set.
cudaError_t march_count(const float* origins, const float* dirs, int64_t n_rays, const float* aabb,
                        const uint8_t* grid, int R, float dt, int max_steps, int64_t* counts, cudaStream_t stream);
// Pass 2: write the kept samples at offsets [n_rays] (exclusive scan of counts).
// half_dt is float32(0.5 * dt) as the torch twin rounds it.
cudaError_t march_fill(const float* origins, const float* dirs, int64_t n_rays, const float* aabb, const uint8_t* grid,
                       int R, float dt, float half_dt, int max_steps, const int64_t* offsets, int64_t* ray_indices,
                       float* t_starts, float* t_ends, cudaStream_t stream);

// ------------------------------------------------------------------ compositing
// Packed samples of ray r are [ray_start[r], ray_start[r+1]). Outputs rgb [R, 3], opacity
// [R], depth [R] (expected midpoint), weights [S]. No background here (added in torch).
cudaError_t composite_fwd(const float* sigmas, const float* rgbs, const float* t_starts, const float* t_ends,
                          const int64_t* ray_start, int64_t n_rays, float* rgb, float* opacity, float* depth,
                          float* weights, cudaStream_t stream);
// Gradients to sigmas [S] and rgbs [S, 3] from the cotangents of the four outputs
// (any of g_opacity / g_depth / g_weights may be nullptr = zero).
cudaError_t composite_bwd(const float* sigmas, const float* rgbs, const float* t_starts, const float* t_ends,
                          const int64_t* ray_start, int64_t n_rays, const float* weights, const float* g_rgb,
                          const float* g_opacity, const float* g_depth, const float* g_weights, float* g_sigmas,
                          float* g_rgbs, cudaStream_t stream);

}  // namespace fmn
