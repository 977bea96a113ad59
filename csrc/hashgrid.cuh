// Hash-grid indexing shared by the forward and backward kernels: tiny-cuda-nn's rule,
// bit for bit (see fastminerf/ops/hashgrid.py for the formula and the torch twin).
#pragma once

#include <cstdint>
#include <cuda_fp16.h>

#include "launchers.h"

namespace fmn {

// Cell corner and fraction along one axis: pos = fma(scale, x, 0.5) rounded once in
// float32, cell = floor(pos) (as uint32, wrapping like the twin's int64 & 0xffffffff).
__device__ __forceinline__ void grid_pos(float scale, float x, uint32_t* cell, float* frac) {
  const float pos = __fmaf_rn(scale, x, 0.5f);
  const float fl = floorf(pos);
  *cell = static_cast<uint32_t>(static_cast<int>(fl));
  *frac = pos - fl;
}

// Absolute table row of grid point (gx, gy, gz) at level l.
__device__ __forceinline__ uint32_t grid_row(uint32_t gx, uint32_t gy, uint32_t gz, int l, const GridLevels& lv) {
  uint32_t idx;
  if ((lv.hashed >> l) & 1u) {
    idx = (gx * 1u) ^ (gy * 2654435761u) ^ (gz * 805459861u);
  } else {
    const uint32_t r = lv.resolution[l];
    idx = gx + gy * r + gz * r * r;
  }
  return lv.offset[l] + idx % lv.size[l];
}

// Trilinear weight of corner c (bit d of c: +1 along axis d), multiplied in axis order
// like the twin's prod(-1).
__device__ __forceinline__ float corner_weight(int c, const float frac[3]) {
  float w = (c & 1) ? frac[0] : 1.0f - frac[0];
  w *= (c & 2) ? frac[1] : 1.0f - frac[1];
  w *= (c & 4) ? frac[2] : 1.0f - frac[2];
  return w;
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }

// F consecutive features of one row, converted to float.
template <typename T, int F>
__device__ __forceinline__ void load_row(const T* __restrict__ table, uint32_t row, float out[F]) {
  const T* p = table + static_cast<size_t>(row) * F;
#pragma unroll
  for (int f = 0; f < F; ++f) out[f] = to_float(p[f]);
}

}  // namespace fmn
