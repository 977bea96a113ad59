// Occupancy-grid marching of one ray (host + device). Every float operation uses an
// explicit rounding helper (add_rn, ...) so nvcc cannot contract it into an fma: sample
// positions and cells then equal march_rays_torch's bit for bit, and so does the set of
// samples.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace fmn {

struct RaySpan {
  float tn, tf;
};

// Entry/exit of the box as ray_aabb(): t_near clamped at 0; |d| <= 1e-12 counts as +1e-12.
FMN_HD RaySpan ray_box(const float o[3], const float d[3], const float aabb[6]) {
  float tn = -INFINITY, tf = INFINITY;
  for (int a = 0; a < 3; ++a) {
    const float dd = fabsf(d[a]) > 1e-12f ? d[a] : 1e-12f;
    const float inv = div_rn(1.0f, dd);
    const float t0 = mul_rn(sub_rn(aabb[a], o[a]), inv);
    const float t1 = mul_rn(sub_rn(aabb[3 + a], o[a]), inv);
    tn = fmaxf(tn, fminf(t0, t1));
    tf = fminf(tf, fmaxf(t0, t1));
  }
  return {fmaxf(tn, 0.0f), tf};
}

// Occupancy of the sample at t (grid_lookup()); false outside the box.
FMN_HD bool occupied(const float o[3], const float d[3], float t, const float aabb[6], const uint8_t* grid, int R) {
  int ijk[3];
  for (int a = 0; a < 3; ++a) {
    const float p = add_rn(o[a], mul_rn(d[a], t));
    const float rel = div_rn(sub_rn(p, aabb[a]), sub_rn(aabb[3 + a], aabb[a]));
    if (!(rel >= 0.0f && rel < 1.0f)) return false;
    const int c = static_cast<int>(mul_rn(rel, static_cast<float>(R)));
    ijk[a] = c < 0 ? 0 : (c > R - 1 ? R - 1 : c);
  }
  return grid[(static_cast<int64_t>(ijk[0]) * R + ijk[1]) * R + ijk[2]] != 0;
}

// Samples of ray r: centres t = t_near + (k + 0.5) dt for k < max_steps while t < t_far,
// kept where the grid is occupied. Returns the count; when ray_indices is not null, also
// writes them from position `offset` on (t_starts/t_ends = t -/+ half_dt).
FMN_HD int64_t march_ray(int64_t r, const float* origins, const float* dirs, const float aabb[6], const uint8_t* grid,
                         int R, float dt, float half_dt, int max_steps, int64_t offset, int64_t* ray_indices,
                         float* t_starts, float* t_ends) {
  const float o[3] = {origins[r * 3], origins[r * 3 + 1], origins[r * 3 + 2]};
  const float d[3] = {dirs[r * 3], dirs[r * 3 + 1], dirs[r * 3 + 2]};
  const RaySpan s = ray_box(o, d, aabb);
  int64_t w = offset;
  for (int k = 0; k < max_steps; ++k) {
    const float t = add_rn(s.tn, mul_rn(static_cast<float>(k) + 0.5f, dt));
    if (!(t < s.tf)) break;  // t never decreases with k
    if (occupied(o, d, t, aabb, grid, R)) {
      if (ray_indices) {
        ray_indices[w] = r;
        t_starts[w] = sub_rn(t, half_dt);
        t_ends[w] = add_rn(t, half_dt);
      }
      ++w;
    }
  }
  return w - offset;
}

}  // namespace fmn
