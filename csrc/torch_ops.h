// Torch-facing adapters of the kernels (implemented in torch_ops.cpp, bound in bindings.cpp).
// Shapes are documented with the Python wrappers in fastminerf/ops/_cuda_ops.py.
#pragma once

#include <optional>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>

namespace fmn {

// Level geometry as plain lists (scale float32 values, resolution, size, offset, hashed).
struct LevelArgs {
  std::vector<double> scale;
  std::vector<int64_t> resolution, size, offset;
  std::vector<bool> hashed;
};

at::Tensor hash_grid_fwd_t(const at::Tensor& x, const at::Tensor& table, const LevelArgs& lv);
at::Tensor hash_grid_rows_t(const at::Tensor& x, const LevelArgs& lv);
at::Tensor hash_grid_bwd_table_t(const at::Tensor& x, const at::Tensor& grad_out, int64_t n_rows, int64_t n_features,
                                 const LevelArgs& lv);
at::Tensor hash_grid_bwd_x_t(const at::Tensor& x, const at::Tensor& table, const at::Tensor& grad_out,
                             const LevelArgs& lv);

std::tuple<at::Tensor, at::Tensor, at::Tensor> bvh_build_t(const at::Tensor& vertices, const at::Tensor& faces);
at::Tensor first_hit_t(const at::Tensor& origins, const at::Tensor& dirs, const at::Tensor& slots,
                       const at::Tensor& nodes, const at::Tensor& tris, int64_t K, int64_t T);
std::tuple<at::Tensor, at::Tensor> nearest_triangle_t(const at::Tensor& points, const at::Tensor& slots,
                                                      const at::Tensor& nodes, const at::Tensor& tris,
                                                      const at::Tensor& leaf_face, int64_t n_meshes,
                                                      int64_t n_faces, bool sort_by_slot);

std::tuple<at::Tensor, at::Tensor, at::Tensor> march_rays_t(const at::Tensor& origins, const at::Tensor& dirs,
                                                            const at::Tensor& aabb, const at::Tensor& grid, double dt,
                                                            int64_t max_steps);

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_fwd_t(
    const at::Tensor& sigmas, const at::Tensor& rgbs, const at::Tensor& t_starts, const at::Tensor& t_ends,
    const at::Tensor& ray_indices, int64_t n_rays);
std::tuple<at::Tensor, at::Tensor> composite_bwd_t(const at::Tensor& sigmas, const at::Tensor& rgbs,
                                                   const at::Tensor& t_starts, const at::Tensor& t_ends,
                                                   const at::Tensor& ray_start, const at::Tensor& weights,
                                                   const at::Tensor& g_rgb, const std::optional<at::Tensor>& g_opacity,
                                                   const std::optional<at::Tensor>& g_depth,
                                                   const std::optional<at::Tensor>& g_weights);

}  // namespace fmn
