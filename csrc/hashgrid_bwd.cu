// Hash-grid encoding, backward.
//   table: one thread per (point, level); every corner row gets w_c * grad (float32 atomics,
//          also for fp16 tables: the gradient is accumulated in float32).
//   x:     one thread per point, looping over levels (no atomics):
//          d out_l / d x_d = scale_l * sum_c <row_c, g_l> * d w_c / d frac_d.
#include "common.cuh"
#include "hashgrid.cuh"

namespace fmn {
namespace {

template <int F>
__global__ void hash_grid_bwd_table_kernel(const float* __restrict__ x, const float* __restrict__ grad_out, int64_t n,
                                           const GridLevels lv, float* __restrict__ grad_table) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  uint32_t cell[3];
  float frac[3];
#pragma unroll
  for (int d = 0; d < 3; ++d) grid_pos(lv.scale[l], x[i * 3 + d], &cell[d], &frac[d]);
  float g[F];
  const float* go = grad_out + i * (static_cast<int64_t>(lv.n_levels) * F) + l * F;
#pragma unroll
  for (int f = 0; f < F; ++f) g[f] = go[f];
#pragma unroll
  for (int c = 0; c < 8; ++c) {
    const float w = corner_weight(c, frac);
    const uint32_t row = grid_row(cell[0] + (c & 1), cell[1] + ((c >> 1) & 1), cell[2] + ((c >> 2) & 1), l, lv);
    float* dst = grad_table + static_cast<size_t>(row) * F;
#pragma unroll
    for (int f = 0; f < F; ++f) atomicAdd(dst + f, w * g[f]);
  }
}

template <typename T, int F>
__global__ void hash_grid_bwd_x_kernel(const float* __restrict__ x, const T* __restrict__ table,
                                       const float* __restrict__ grad_out, int64_t n, const GridLevels lv,
                                       float* __restrict__ grad_x) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float xi[3] = {x[i * 3], x[i * 3 + 1], x[i * 3 + 2]};
  float gx[3] = {0.0f, 0.0f, 0.0f};
  for (int l = 0; l < lv.n_levels; ++l) {
    uint32_t cell[3];
    float frac[3];
#pragma unroll
    for (int d = 0; d < 3; ++d) grid_pos(lv.scale[l], xi[d], &cell[d], &frac[d]);
    float g[F];
    const float* go = grad_out + i * (static_cast<int64_t>(lv.n_levels) * F) + l * F;
#pragma unroll
    for (int f = 0; f < F; ++f) g[f] = go[f];
    float acc[3] = {0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int c = 0; c < 8; ++c) {
      const uint32_t row = grid_row(cell[0] + (c & 1), cell[1] + ((c >> 1) & 1), cell[2] + ((c >> 2) & 1), l, lv);
      float v[F];
      load_row<T, F>(table, row, v);
      float dot_g = 0.0f;
#pragma unroll
      for (int f = 0; f < F; ++f) dot_g += v[f] * g[f];
      float fac[3];
#pragma unroll
      for (int d = 0; d < 3; ++d) fac[d] = ((c >> d) & 1) ? frac[d] : 1.0f - frac[d];
#pragma unroll
      for (int d = 0; d < 3; ++d) {
        const float sign = ((c >> d) & 1) ? 1.0f : -1.0f;
        const float other = fac[(d + 1) % 3] * fac[(d + 2) % 3];
        acc[d] += dot_g * sign * other;
      }
    }
#pragma unroll
    for (int d = 0; d < 3; ++d) gx[d] += acc[d] * lv.scale[l];
  }
#pragma unroll
  for (int d = 0; d < 3; ++d) grad_x[i * 3 + d] = gx[d];
}

template <typename T>
cudaError_t launch_bwd_x(const float* x, const T* table, const float* grad_out, int64_t n, int F, const GridLevels& lv,
                         float* grad_x, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (lv.n_levels < 1 || lv.n_levels > kMaxLevels) return cudaErrorInvalidValue;
  const unsigned int b = blocks_for(n, 128);
  switch (F) {
    case 1: hash_grid_bwd_x_kernel<T, 1><<<b, 128, 0, stream>>>(x, table, grad_out, n, lv, grad_x); break;
    case 2: hash_grid_bwd_x_kernel<T, 2><<<b, 128, 0, stream>>>(x, table, grad_out, n, lv, grad_x); break;
    case 4: hash_grid_bwd_x_kernel<T, 4><<<b, 128, 0, stream>>>(x, table, grad_out, n, lv, grad_x); break;
    case 8: hash_grid_bwd_x_kernel<T, 8><<<b, 128, 0, stream>>>(x, table, grad_out, n, lv, grad_x); break;
    default: return cudaErrorInvalidValue;
  }
  return last_error();
}

}  // namespace

cudaError_t hash_grid_bwd_table(const float* x, const float* grad_out, int64_t n, int F, const GridLevels& lv,
                                float* grad_table, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (lv.n_levels < 1 || lv.n_levels > kMaxLevels) return cudaErrorInvalidValue;
  const dim3 grid(blocks_for(n), lv.n_levels);
  switch (F) {
    case 1: hash_grid_bwd_table_kernel<1><<<grid, kThreads, 0, stream>>>(x, grad_out, n, lv, grad_table); break;
    case 2: hash_grid_bwd_table_kernel<2><<<grid, kThreads, 0, stream>>>(x, grad_out, n, lv, grad_table); break;
    case 4: hash_grid_bwd_table_kernel<4><<<grid, kThreads, 0, stream>>>(x, grad_out, n, lv, grad_table); break;
    case 8: hash_grid_bwd_table_kernel<8><<<grid, kThreads, 0, stream>>>(x, grad_out, n, lv, grad_table); break;
    default: return cudaErrorInvalidValue;
  }
  return last_error();
}

cudaError_t hash_grid_bwd_x(const float* x, const float* table, const float* grad_out, int64_t n, int F,
                            const GridLevels& lv, float* grad_x, cudaStream_t stream) {
  return launch_bwd_x(x, table, grad_out, n, F, lv, grad_x, stream);
}

cudaError_t hash_grid_bwd_x(const float* x, const __half* table, const float* grad_out, int64_t n, int F,
                            const GridLevels& lv, float* grad_x, cudaStream_t stream) {
  return launch_bwd_x(x, table, grad_out, n, F, lv, grad_x, stream);
}

}  // namespace fmn
