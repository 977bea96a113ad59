// Hash-grid encoding, per (point, level) and per point: tiny-cuda-nn's indexing bit for bit
// (see fastminerf/ops/hashgrid.py for the formula and the torch twin). Host + device.
#pragma once

#include <cstdint>
#include <cuda_fp16.h>

#include "common.cuh"
#include "launchers.h"

namespace fmn {

// Cell corner and fraction along one axis: pos = fma(scale, x, 0.5) rounded once in
// float32, cell = floor(pos) (as uint32, wrapping like the twin's int64 & 0xffffffff).
FMN_HD void grid_pos(float scale, float x, uint32_t* cell, float* frac) {
  const float pos = fma_rn(scale, x, 0.5f);
  const float fl = floorf(pos);
  *cell = static_cast<uint32_t>(static_cast<int>(fl));
  *frac = pos - fl;
}

// Absolute table row of grid point (gx, gy, gz) at level l.
FMN_HD uint32_t grid_row(uint32_t gx, uint32_t gy, uint32_t gz, int l, const GridLevels& lv) {
  uint32_t idx;
  if ((lv.hashed >> l) & 1u) {
    idx = (gx * 1u) ^ (gy * 2654435761u) ^ (gz * 805459861u);
  } else {
    const uint32_t r = lv.resolution[l];
    idx = gx + gy * r + gz * r * r;
  }
  return lv.offset[l] + idx % lv.size[l];
}

FMN_HD uint32_t corner_row(const uint32_t cell[3], int c, int l, const GridLevels& lv) {
  return grid_row(cell[0] + (c & 1), cell[1] + ((c >> 1) & 1), cell[2] + ((c >> 2) & 1), l, lv);
}

// Trilinear weight of corner c (bit d of c: +1 along axis d), multiplied in axis order
// like the twin's prod(-1).
FMN_HD float corner_weight(int c, const float frac[3]) {
  float w = (c & 1) ? frac[0] : 1.0f - frac[0];
  w *= (c & 2) ? frac[1] : 1.0f - frac[1];
  w *= (c & 4) ? frac[2] : 1.0f - frac[2];
  return w;
}

FMN_HD float to_float(float v) { return v; }
FMN_HD float to_float(__half v) { return __half2float(v); }

FMN_HD void level_cell(const float* x3, int l, const GridLevels& lv, uint32_t cell[3], float frac[3]) {
  for (int d = 0; d < 3; ++d) grid_pos(lv.scale[l], x3[d], &cell[d], &frac[d]);
}

// out[F] = trilinear blend of the 8 corner rows of level l at point x3.
template <typename T, int F>
FMN_HD void encode_level(const float* x3, const T* __restrict__ table, int l, const GridLevels& lv, float* out) {
  uint32_t cell[3];
  float frac[3];
  level_cell(x3, l, lv, cell, frac);
  float acc[F];
  for (int f = 0; f < F; ++f) acc[f] = 0.0f;
  for (int c = 0; c < 8; ++c) {
    const float w = corner_weight(c, frac);
    const T* row = table + static_cast<size_t>(corner_row(cell, c, l, lv)) * F;
    for (int f = 0; f < F; ++f) acc[f] += w * to_float(row[f]);
  }
  for (int f = 0; f < F; ++f) out[f] = acc[f];
}

// rows8[c] = absolute table row of corner c of level l.
FMN_HD void level_rows(const float* x3, int l, const GridLevels& lv, int64_t* rows8) {
  uint32_t cell[3];
  float frac[3];
  level_cell(x3, l, lv, cell, frac);
  for (int c = 0; c < 8; ++c) rows8[c] = corner_row(cell, c, l, lv);
}

// grad_table[row_c, :] += w_c * g[F] for the 8 corners of level l (float32 atomics).
template <int F>
FMN_HD void scatter_level(const float* x3, const float* g, int l, const GridLevels& lv, float* grad_table) {
  uint32_t cell[3];
  float frac[3];
  level_cell(x3, l, lv, cell, frac);
  for (int c = 0; c < 8; ++c) {
    const float w = corner_weight(c, frac);
    float* dst = grad_table + static_cast<size_t>(corner_row(cell, c, l, lv)) * F;
    for (int f = 0; f < F; ++f) atomic_add(dst + f, w * g[f]);
  }
}

// gx[3] = sum_l scale_l sum_c <row_c, g_l> d w_c / d frac (g: the point's [L*F] cotangent).
template <typename T, int F>
FMN_HD void grad_point(const float* x3, const T* __restrict__ table, const float* g, const GridLevels& lv, float* gx) {
  float out[3] = {0.0f, 0.0f, 0.0f};
  for (int l = 0; l < lv.n_levels; ++l) {
    uint32_t cell[3];
    float frac[3];
    level_cell(x3, l, lv, cell, frac);
    const float* gl = g + l * F;
    float acc[3] = {0.0f, 0.0f, 0.0f};
    for (int c = 0; c < 8; ++c) {
      const T* row = table + static_cast<size_t>(corner_row(cell, c, l, lv)) * F;
      float dot_g = 0.0f;
      for (int f = 0; f < F; ++f) dot_g += to_float(row[f]) * gl[f];
      float fac[3];
      for (int d = 0; d < 3; ++d) fac[d] = ((c >> d) & 1) ? frac[d] : 1.0f - frac[d];
      for (int d = 0; d < 3; ++d) {
        const float sign = ((c >> d) & 1) ? 1.0f : -1.0f;
        acc[d] += dot_g * sign * (fac[(d + 1) % 3] * fac[(d + 2) % 3]);
      }
    }
    for (int d = 0; d < 3; ++d) out[d] += acc[d] * lv.scale[l];
  }
  for (int d = 0; d < 3; ++d) gx[d] = out[d];
}

}  // namespace fmn
