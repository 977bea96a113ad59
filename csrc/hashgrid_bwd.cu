// Hash-grid encoding, backward (hashgrid.cuh):
//   table: one thread per (point, level); every corner row gets w_c * grad (float32 atomics,
//          also for fp16 tables: the gradient is accumulated in float32);
//   x:     one thread per point, looping over levels (no atomics):
//          d out_l / d x_d = scale_l * sum_c <row_c, g_l> * d w_c / d frac_d.
#include "hashgrid.cuh"

namespace fmn {
namespace {

template <int F>
__global__ void hash_grid_bwd_table_kernel(const float* __restrict__ x, const float* __restrict__ grad_out, int64_t n,
                                           const GridLevels lv, float* __restrict__ grad_table) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  scatter_level<F>(x + i * 3, grad_out + i * (static_cast<int64_t>(lv.n_levels) * F) + l * F, l, lv, grad_table);
}

template <typename T, int F>
__global__ void hash_grid_bwd_x_kernel(const float* __restrict__ x, const T* __restrict__ table,
                                       const float* __restrict__ grad_out, int64_t n, const GridLevels lv,
                                       float* __restrict__ grad_x) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  grad_point<T, F>(x + i * 3, table, grad_out + i * (static_cast<int64_t>(lv.n_levels) * F), lv, grad_x + i * 3);
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
