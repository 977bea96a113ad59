// Device helpers of the nearest-triangle op: Morton codes, box distance, and the exact
// point-triangle distance (the torch twin's Voronoi-region test, same branch priority).
#pragma once

#include <cfloat>
#include <cstdint>

#include "common.cuh"
#include "launchers.h"

namespace fmn {

// 10 bits -> 30 bits with two zeros between bits.
__device__ __forceinline__ uint32_t spread_bits(uint32_t v) {
  v = (v * 0x00010001u) & 0xFF0000FFu;
  v = (v * 0x00000101u) & 0x0F00F00Fu;
  v = (v * 0x00000011u) & 0xC30C30C3u;
  v = (v * 0x00000005u) & 0x49249249u;
  return v;
}

// Morton code of a point given in [0, 1]^3 (clamped).
__device__ __forceinline__ uint32_t morton30(float x, float y, float z) {
  const auto q = [](float v) {
    return static_cast<uint32_t>(fminf(fmaxf(v * 1024.0f, 0.0f), 1023.0f));
  };
  return (spread_bits(q(x)) << 2) | (spread_bits(q(y)) << 1) | spread_bits(q(z));
}

// Squared distance from p to the box [lo, hi] (0 inside).
__device__ __forceinline__ float box_dist2(f3 p, const float lo[3], const float hi[3]) {
  const float dx = fmaxf(fmaxf(lo[0] - p.x, p.x - hi[0]), 0.0f);
  const float dy = fmaxf(fmaxf(lo[1] - p.y, p.y - hi[1]), 0.0f);
  const float dz = fmaxf(fmaxf(lo[2] - p.z, p.z - hi[2]), 0.0f);
  return dx * dx + dy * dy + dz * dz;
}

__device__ __forceinline__ float safe_den(float d) {
  const float eps = 1e-30f;  // as closest_point_on_triangle in fastminerf/ops/embed.py
  return fabsf(d) > eps ? d : eps;
}

// Exact closest point on triangle (a, b, c) to p; priority of regions as the torch twin:
// vertex a, vertex b, vertex c, edge ab, edge ac, edge bc, interior.
__device__ __forceinline__ f3 closest_on_triangle(f3 p, f3 a, f3 b, f3 c) {
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

__device__ __forceinline__ float point_triangle_dist2(f3 p, const float* __restrict__ tri) {
  const f3 q = closest_on_triangle(p, load3(tri), load3(tri + 3), load3(tri + 6));
  const f3 d = sub(q, p);
  return dot(d, d);
}

}  // namespace fmn
