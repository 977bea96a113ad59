// Exact nearest triangle of each point in its own mesh's LBVH (see bvh_build.cu).
// Best-first descent with a short stack; a subtree is skipped only when its box is
// farther than the best squared distance found (times 1 + 1e-6, so float round-off in the
// box test can never hide a triangle that ties or wins by an ulp). Depth of a Karras tree
// with 30-bit codes and position tie-breaks is < 30 + 32, hence the 64-entry stack.
#include "bvh.cuh"

namespace fmn {
namespace {

constexpr int kStack = 64;

__device__ __forceinline__ float slack(float best) { return best * (1.0f + 1e-6f); }

__global__ void nearest_kernel(const float* __restrict__ points, const int64_t* __restrict__ slots,
                               const int64_t* __restrict__ order, int64_t n, const BvhNode* __restrict__ nodes,
                               const float* __restrict__ tris, const int32_t* __restrict__ leaf_face, int T,
                               int64_t* __restrict__ face_out, float* __restrict__ dist_out) {
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (tid >= n) return;
  const int64_t i = order ? order[tid] : tid;
  const f3 p = load3(points + i * 3);
  const int64_t k = slots[i];
  const float* ktris = tris + k * T * 9;
  const int32_t* kface = leaf_face + k * T;
  float best = FLT_MAX;
  int best_face = 0x7fffffff;

  auto test_leaf = [&](int j) {
    const float d2 = point_triangle_dist2(p, ktris + static_cast<int64_t>(j) * 9);
    if (d2 <= best) {
      const int f = kface[j];
      if (d2 < best || f < best_face) {
        best = d2;
        best_face = f;
      }
    }
  };

  if (T == 1) {
    test_leaf(0);
  } else {
    const BvhNode* knodes = nodes + k * (T - 1);
    int stack_node[kStack];
    float stack_d2[kStack];
    int sp = 0;
    int cur = 0;
    while (true) {
      const BvhNode nd = knodes[cur];
      const float dl = box_dist2(p, nd.lo[0], nd.hi[0]);
      const float dr = box_dist2(p, nd.lo[1], nd.hi[1]);
      const int cl = nd.child[0], cr = nd.child[1];
      if (cl < 0 && dl <= slack(best)) test_leaf(~cl);
      if (cr < 0 && dr <= slack(best)) test_leaf(~cr);
      const bool go_l = cl >= 0 && dl <= slack(best);
      const bool go_r = cr >= 0 && dr <= slack(best);
      if (go_l && go_r) {
        const bool left_first = dl <= dr;
        stack_node[sp] = left_first ? cr : cl;  // sp < kStack: depth bound above
        stack_d2[sp] = left_first ? dr : dl;
        ++sp;
        cur = left_first ? cl : cr;
      } else if (go_l) {
        cur = cl;
      } else if (go_r) {
        cur = cr;
      } else {
        cur = -1;
        while (sp > 0) {
          --sp;
          if (stack_d2[sp] <= slack(best)) {
            cur = stack_node[sp];
            break;
          }
        }
        if (cur < 0) break;
      }
    }
  }
  face_out[i] = best_face;
  dist_out[i] = sqrtf(best);
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
