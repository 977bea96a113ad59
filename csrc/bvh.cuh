// Nearest triangle with one LBVH per mesh (Karras 2012), per item and host + device:
// Morton keys, leaves, internal nodes, the bottom-up refit of one leaf's path, and the
// exact nearest-triangle query of one point (the torch twin's point-triangle test).
#pragma once

#include <cfloat>
#include <cstdint>

#include "common.cuh"
#include "launchers.h"

namespace fmn {

// 10 bits -> 30 bits with two zeros between bits.
FMN_HD uint32_t spread_bits(uint32_t v) {
  v = (v * 0x00010001u) & 0xFF0000FFu;
  v = (v * 0x00000101u) & 0x0F00F00Fu;
  v = (v * 0x00000011u) & 0xC30C30C3u;
  v = (v * 0x00000005u) & 0x49249249u;
  return v;
}

FMN_HD uint32_t quantize10(float v) { return static_cast<uint32_t>(fminf(fmaxf(v * 1024.0f, 0.0f), 1023.0f)); }

// Morton code of a point given in [0, 1]^3 (clamped).
FMN_HD uint32_t morton30(float x, float y, float z) {
  return (spread_bits(quantize10(x)) << 2) | (spread_bits(quantize10(y)) << 1) | spread_bits(quantize10(z));
}

// Squared distance from p to the box [lo, hi] (0 inside).
FMN_HD float box_dist2(f3 p, const float lo[3], const float hi[3]) {
  const float dx = fmaxf(fmaxf(lo[0] - p.x, p.x - hi[0]), 0.0f);
  const float dy = fmaxf(fmaxf(lo[1] - p.y, p.y - hi[1]), 0.0f);
  const float dz = fmaxf(fmaxf(lo[2] - p.z, p.z - hi[2]), 0.0f);
  return dx * dx + dy * dy + dz * dz;
}

FMN_HD float safe_den(float d) {
  const float eps = 1e-30f;  // as closest_point_on_triangle in fastminerf/ops/embed.py
  return fabsf(d) > eps ? d : eps;
}

// Exact closest point on triangle (a, b, c) to p; priority of regions as the torch twin:
// vertex a, vertex b, vertex c, edge ab, edge ac, edge bc, interior.
FMN_HD f3 closest_on_triangle(f3 p, f3 a, f3 b, f3 c) {
  const f3 ab = sub(b, a), ac = sub(c, a), ap = sub(p, a);
  const float d1 = dot(ab, ap), d2 = dot(ac, ap);
  if (d1 <= 0.0f && d2 <= 0.0f) return a;
  const f3 bp = sub(p, b);
  const float d3 = dot(ab, bp), d4 = dot(ac, bp);
  if (d3 >= 0.0f && d4 <= d3) return b;
  const f3 cp = sub(p, c);
  const float d5 = dot(ab, cp), d6 = dot(ac, cp);
  if (d6 >= 0.0f && d5 <= d6) return c;
  const float vc = d1 * d4 - d3 * d2;
  if (vc <= 0.0f && d1 >= 0.0f && d3 <= 0.0f) return add(a, mul(ab, d1 / safe_den(d1 - d3)));
  const float vb = d5 * d2 - d1 * d6;
  if (vb <= 0.0f && d2 >= 0.0f && d6 <= 0.0f) return add(a, mul(ac, d2 / safe_den(d2 - d6)));
  const float va = d3 * d6 - d5 * d4;
  if (va <= 0.0f && d4 - d3 >= 0.0f && d5 - d6 >= 0.0f) {
    const float w = (d4 - d3) / safe_den((d4 - d3) + (d5 - d6));
    return add(b, mul(sub(c, b), w));
  }
  const float den = safe_den(va + vb + vc);
  return add(a, add(mul(ab, vb / den), mul(ac, vc / den)));
}

FMN_HD float point_triangle_dist2(f3 p, const float* tri) {
  const f3 q = closest_on_triangle(p, load3(tri), load3(tri + 3), load3(tri + 6));
  const f3 d = sub(q, p);
  return dot(d, d);
}

// ---------------------------------------------------------------- build, per item
// keys[i] for triangle t of mesh k (i = k*T + t).
FMN_HD void morton_key(int64_t i, const float* verts, const int32_t* faces, const float* box_lo, const float* box_hi,
                       int V, int T, int64_t* keys) {
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

// Leaf i (sorted position within all K*T): its triangle's vertices and face id.
FMN_HD void leaf_setup(int64_t i, const int64_t* perm, const float* verts, const int32_t* faces, int V, int T,
                       float* tris, int32_t* leaf_face) {
  const int k = static_cast<int>(i / T);
  const int t = static_cast<int>(perm[i] - static_cast<int64_t>(k) * T);
  leaf_face[i] = t;
  const float* vk = verts + static_cast<int64_t>(k) * V * 3;
  for (int v = 0; v < 3; ++v)
    for (int d = 0; d < 3; ++d) tris[i * 9 + v * 3 + d] = vk[faces[t * 3 + v] * 3 + d];
}

// Length of the common prefix of leaves i and j of one mesh (codes, then positions);
// -1 outside [0, n).
FMN_HD int prefix_len(const int64_t* keys, int n, int i, int64_t j) {
  if (j < 0 || j >= n) return -1;
  const uint32_t a = static_cast<uint32_t>(keys[i]), b = static_cast<uint32_t>(keys[j]);
  if (a == b) return 32 + clz32(static_cast<uint32_t>(i) ^ static_cast<uint32_t>(j));
  return clz32(a ^ b);
}

// Internal node i of mesh k (gi = k*(T-1) + i): children and parent links. A parent link
// is (parent << 1) | side, -1 for the root.
FMN_HD void internal_node(int64_t gi, const int64_t* sorted_keys, int T, BvhNode* nodes, int32_t* node_parent,
                          int32_t* leaf_parent) {
  const int n_int = T - 1;
  const int k = static_cast<int>(gi / n_int), i = static_cast<int>(gi % n_int);
  const int64_t* keys = sorted_keys + static_cast<int64_t>(k) * T;
  // direction and far end j of the range of leaves covered by node i
  const int d = (prefix_len(keys, T, i, i + 1) - prefix_len(keys, T, i, i - 1)) >= 0 ? 1 : -1;
  const int dmin = prefix_len(keys, T, i, static_cast<int64_t>(i) - d);
  int64_t lmax = 2;
  while (prefix_len(keys, T, i, i + lmax * d) > dmin) lmax *= 2;
  int64_t len = 0;
  for (int64_t t = lmax / 2; t >= 1; t /= 2)
    if (prefix_len(keys, T, i, i + (len + t) * d) > dmin) len += t;
  const int j = static_cast<int>(i + len * d);
  // split: the last leaf (from i towards j) sharing more than prefix_len(i, j) bits with i
  const int dnode = prefix_len(keys, T, i, j);
  int64_t s = 0, t = len;
  do {
    t = (t + 1) / 2;
    if (prefix_len(keys, T, i, i + (s + t) * d) > dnode) s += t;
  } while (t > 1);
  const int gamma = static_cast<int>(i + s * d + (d < 0 ? -1 : 0));
  const int lo = i < j ? i : j, hi = i < j ? j : i;
  BvhNode* nd = nodes + static_cast<int64_t>(k) * n_int + i;
  const int64_t leaf0 = static_cast<int64_t>(k) * T, node0 = static_cast<int64_t>(k) * n_int;
  for (int side = 0; side < 2; ++side) {
    const int c = gamma + side;
    const bool leaf = side == 0 ? (lo == gamma) : (hi == gamma + 1);
    nd->child[side] = leaf ? ~c : c;
    (leaf ? leaf_parent[leaf0 + c] : node_parent[node0 + c]) = (i << 1) | side;
  }
  if (i == 0) node_parent[node0] = -1;
}

// Bottom-up refit from leaf gi: write the box into the parent's slot; the second thread to
// reach a node (flags count arrivals) merges the sibling's box and goes on up.
FMN_HD void refit_leaf(int64_t gi, const float* tris, const int32_t* node_parent, const int32_t* leaf_parent, int T,
                       BvhNode* nodes, int32_t* flags) {
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
    thread_fence();
    if (atomic_add(fl + p, 1) == 0) return;  // the sibling's thread finishes this node
    thread_fence();
    for (int d = 0; d < 3; ++d) {  // the sibling's box, read from L2 (bypassing L1)
      lo[d] = fminf(lo[d], load_cg(&nd->lo[1 - side][d]));
      hi[d] = fmaxf(hi[d], load_cg(&nd->hi[1 - side][d]));
    }
    link = np[p];
  }
}

// ---------------------------------------------------------------- query, per point
// Best-first descent with a short stack; a subtree is skipped only when its box is farther
// than the best squared distance (times 1 + 1e-6, so float round-off in the box test never
// hides a triangle that ties or wins by an ulp). Depth of a Karras tree over 30-bit codes
// with position tie-breaks is < 62, hence 64 entries. Ties (equal squared distance) go to
// the smaller face index, as the torch twin's argmin.
constexpr int kStack = 64;

FMN_HD float slack(float best) { return best * (1.0f + 1e-6f); }

FMN_HD void nearest_point(f3 p, int64_t k, const BvhNode* nodes, const float* tris, const int32_t* leaf_face, int T,
                          int* face_out, float* dist2_out) {
  const float* ktris = tris + k * T * 9;
  const int32_t* kface = leaf_face + k * T;
  float best = FLT_MAX;
  int best_face = 0x7fffffff;
  const auto test_leaf = [&](int j) {
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
    int sp = 0, cur = 0;
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
        stack_node[sp] = left_first ? cr : cl;
        stack_d2[sp] = left_first ? dr : dl;
        ++sp;
        cur = left_first ? cl : cr;
      } else if (go_l || go_r) {
        cur = go_l ? cl : cr;
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
  *face_out = best_face;
  *dist2_out = best;
}

// ---------------------------------------------------------------- query, per ray
FMN_HD f3 cross3(f3 a, f3 b) { return {a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x}; }

// Entry distance of ray (o, 1/d) into box [lo, hi] clipped to [0, tmax]; FLT_MAX when it misses.
FMN_HD float ray_box(f3 o, f3 inv, const float lo[3], const float hi[3], float tmax) {
  float t0 = 0.0f, t1 = tmax;
  const float oo[3] = {o.x, o.y, o.z}, ii[3] = {inv.x, inv.y, inv.z};
  for (int d = 0; d < 3; ++d) {
    float a = (lo[d] - oo[d]) * ii[d], b = (hi[d] - oo[d]) * ii[d];
    if (a > b) {
      const float s = a;
      a = b;
      b = s;
    }
    t0 = fmaxf(t0, a);
    t1 = fminf(t1, b * (1.0f + 2e-7f));  // conservative far plane: round-off never drops a hit
  }
  return t0 <= t1 ? t0 : FLT_MAX;
}

// Möller–Trumbore hit distance of ray (o, d) with triangle tri (9 floats), as the torch twin
// first_hit_torch (|det| > 1e-12, u, v >= 0, u + v <= 1, t > 0); FLT_MAX when no hit.
FMN_HD float ray_triangle(f3 o, f3 d, const float* tri) {
  const f3 a = load3(tri), e1 = sub(load3(tri + 3), a), e2 = sub(load3(tri + 6), a);
  const f3 p = cross3(d, e2);
  const float det = dot(e1, p);
  if (!(fabsf(det) > 1e-12f)) return FLT_MAX;
  const float inv = 1.0f / det;
  const f3 tv = sub(o, a);
  const float u = dot(tv, p) * inv;
  const f3 q = cross3(tv, e1);
  const float v = dot(d, q) * inv;
  const float t = dot(e2, q) * inv;
  return (u >= 0.0f && v >= 0.0f && u + v <= 1.0f && t > 0.0f) ? t : FLT_MAX;
}

// Distance to the first triangle of mesh k hit by ray (o, d); FLT_MAX when it misses.
// Depth-first with the nearer child first; subtrees entered beyond the best hit are skipped.
FMN_HD float first_hit_ray(f3 o, f3 d, int64_t k, const BvhNode* nodes, const float* tris, int T) {
  const float* ktris = tris + k * T * 9;
  const f3 inv = {1.0f / (fabsf(d.x) > 1e-12f ? d.x : copysignf(1e-12f, d.x)),
                  1.0f / (fabsf(d.y) > 1e-12f ? d.y : copysignf(1e-12f, d.y)),
                  1.0f / (fabsf(d.z) > 1e-12f ? d.z : copysignf(1e-12f, d.z))};
  float best = FLT_MAX;
  if (T == 1) return ray_triangle(o, d, ktris);
  const BvhNode* knodes = nodes + k * (T - 1);
  int stack[kStack];
  int sp = 0, cur = 0;
  while (true) {
    const BvhNode nd = knodes[cur];
    const float tl = ray_box(o, inv, nd.lo[0], nd.hi[0], best);
    const float tr = ray_box(o, inv, nd.lo[1], nd.hi[1], best);
    const int cl = nd.child[0], cr = nd.child[1];
    if (cl < 0 && tl != FLT_MAX) best = fminf(best, ray_triangle(o, d, ktris + static_cast<int64_t>(~cl) * 9));
    if (cr < 0 && tr != FLT_MAX) best = fminf(best, ray_triangle(o, d, ktris + static_cast<int64_t>(~cr) * 9));
    const bool go_l = cl >= 0 && tl != FLT_MAX, go_r = cr >= 0 && tr != FLT_MAX;
    if (go_l && go_r) {
      const bool left_first = tl <= tr;
      stack[sp++] = left_first ? cr : cl;
      cur = left_first ? cl : cr;
    } else if (go_l || go_r) {
      cur = go_l ? cl : cr;
    } else if (sp > 0) {
      cur = stack[--sp];
    } else {
      break;
    }
  }
  return best;
}

}  // namespace fmn
