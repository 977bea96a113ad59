// Hash-grid encoding, forward: one thread per (point, level), trilinear blend of 8 rows
// (encode_level in hashgrid.cuh); and the rows themselves, for exact-index tests.
#include "hashgrid.cuh"

namespace fmn {
namespace {

template <typename T, int F>
__global__ void hash_grid_fwd_kernel(const float* __restrict__ x, const T* __restrict__ table, int64_t n,
                                     const GridLevels lv, float* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  encode_level<T, F>(x + i * 3, table, l, lv, out + i * (static_cast<int64_t>(lv.n_levels) * F) + l * F);
}

__global__ void hash_grid_rows_kernel(const float* __restrict__ x, int64_t n, const GridLevels lv,
                                      int64_t* __restrict__ rows) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int l = blockIdx.y;
  if (i >= n) return;
  level_rows(x + i * 3, l, lv, rows + (i * lv.n_levels + l) * 8);
}

template <typename T>
cudaError_t launch_fwd(const float* x, const T* table, int64_t n, int F, const GridLevels& lv, float* out,
                       cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (lv.n_levels < 1 || lv.n_levels > kMaxLevels) return cudaErrorInvalidValue;
  const dim3 grid(blocks_for(n), lv.n_levels);
  switch (F) {
    case 1: hash_grid_fwd_kernel<T, 1><<<grid, kThreads, 0, stream>>>(x, table, n, lv, out); break;
    case 2: hash_grid_fwd_kernel<T, 2><<<grid, kThreads, 0, stream>>>(x, table, n, lv, out); break;
    case 4: hash_grid_fwd_kernel<T, 4><<<grid, kThreads, 0, stream>>>(x, table, n, lv, out); break;
    case 8: hash_grid_fwd_kernel<T, 8><<<grid, kThreads, 0, stream>>>(x, table, n, lv, out); break;
    default: return cudaErrorInvalidValue;
  }
  return last_error();
}

}  // namespace

cudaError_t hash_grid_fwd(const float* x, const float* table, int64_t n, int F, const GridLevels& lv, float* out,
                          cudaStream_t stream) {
  return launch_fwd(x, table, n, F, lv, out, stream);
}

cudaError_t hash_grid_fwd(const float* x, const __half* table, int64_t n, int F, const GridLevels& lv, float* out,
                          cudaStream_t stream) {
  return launch_fwd(x, table, n, F, lv, out, stream);
}

cudaError_t hash_grid_rows(const float* x, int64_t n, const GridLevels& lv, int64_t* rows, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (lv.n_levels < 1 || lv.n_levels > kMaxLevels) return cudaErrorInvalidValue;
  hash_grid_rows_kernel<<<dim3(blocks_for(n), lv.n_levels), kThreads, 0, stream>>>(x, n, lv, rows);
  return last_error();
}

}  // namespace fmn
