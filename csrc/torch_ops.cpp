// Torch adapters: check tensors, allocate outputs, call the launchers of launchers.h on the
// current CUDA stream, and turn a CUDA error into a Python RuntimeError.
#include "torch_ops.h"

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "launchers.h"

namespace fmn {
namespace {

#define FMN_CHECK_INPUT(t, dtype)                                                                        \
  TORCH_CHECK((t).is_cuda(), #t " must be a CUDA tensor");                                              \
  TORCH_CHECK((t).is_contiguous(), #t " must be contiguous");                                           \
  TORCH_CHECK((t).scalar_type() == (dtype), #t " must be ", (dtype), ", got ", (t).scalar_type())

void check_cuda(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "fastminerf kernel ", what, " failed: ", cudaGetErrorString(err));
}

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

GridLevels to_levels(const LevelArgs& a) {
  const size_t L = a.scale.size();
  TORCH_CHECK(L >= 1 && L <= static_cast<size_t>(kMaxLevels), "hash grid: 1..", kMaxLevels, " levels, got ", L);
  TORCH_CHECK(a.resolution.size() == L && a.size.size() == L && a.offset.size() == L && a.hashed.size() == L,
              "hash grid: level lists differ in length");
  GridLevels lv{};
  lv.n_levels = static_cast<int>(L);
  for (size_t l = 0; l < L; ++l) {
    lv.scale[l] = static_cast<float>(a.scale[l]);
    lv.resolution[l] = static_cast<uint32_t>(a.resolution[l]);
    lv.size[l] = static_cast<uint32_t>(a.size[l]);
    lv.offset[l] = static_cast<uint32_t>(a.offset[l]);
    lv.hashed |= a.hashed[l] ? (1u << l) : 0u;
  }
  return lv;
}

void check_points(const at::Tensor& x) {
  FMN_CHECK_INPUT(x, at::kFloat);
  TORCH_CHECK(x.dim() == 2 && x.size(1) == 3, "x must be [N, 3], got ", x.sizes());
}

}  // namespace

// ------------------------------------------------------------------ hash grid
at::Tensor hash_grid_fwd_t(const at::Tensor& x, const at::Tensor& table, const LevelArgs& a) {
  check_points(x);
  TORCH_CHECK(table.is_cuda() && table.is_contiguous() && table.dim() == 2, "table must be a contiguous CUDA [P, F]");
  const c10::cuda::CUDAGuard guard(x.device());
  const GridLevels lv = to_levels(a);
  const int F = static_cast<int>(table.size(1));
  auto out = at::empty({x.size(0), lv.n_levels * F}, x.options());
  cudaError_t err;
  if (table.scalar_type() == at::kFloat) {
    err = hash_grid_fwd(x.data_ptr<float>(), table.data_ptr<float>(), x.size(0), F, lv, out.data_ptr<float>(), stream());
  } else {
    TORCH_CHECK(table.scalar_type() == at::kHalf, "table must be float32 or float16, got ", table.scalar_type());
    err = hash_grid_fwd(x.data_ptr<float>(), reinterpret_cast<const __half*>(table.data_ptr<at::Half>()), x.size(0), F,
                        lv, out.data_ptr<float>(), stream());
  }
  check_cuda(err, "hash_grid_fwd (n_features must be 1, 2, 4 or 8)");
  return out;
}

at::Tensor hash_grid_rows_t(const at::Tensor& x, const LevelArgs& a) {
  check_points(x);
  const c10::cuda::CUDAGuard guard(x.device());
  const GridLevels lv = to_levels(a);
  auto rows = at::empty({x.size(0), lv.n_levels, 8}, x.options().dtype(at::kLong));
  check_cuda(hash_grid_rows(x.data_ptr<float>(), x.size(0), lv, rows.data_ptr<int64_t>(), stream()), "hash_grid_rows");
  return rows;
}

at::Tensor hash_grid_bwd_table_t(const at::Tensor& x, const at::Tensor& grad_out, int64_t n_rows, int64_t n_features,
                                 const LevelArgs& a) {
  check_points(x);
  FMN_CHECK_INPUT(grad_out, at::kFloat);
  const c10::cuda::CUDAGuard guard(x.device());
  const GridLevels lv = to_levels(a);
  TORCH_CHECK(grad_out.dim() == 2 && grad_out.size(0) == x.size(0) && grad_out.size(1) == lv.n_levels * n_features,
              "grad_out must be [N, L*F], got ", grad_out.sizes());
  auto grad = at::zeros({n_rows, n_features}, x.options());
  check_cuda(hash_grid_bwd_table(x.data_ptr<float>(), grad_out.data_ptr<float>(), x.size(0),
                                 static_cast<int>(n_features), lv, grad.data_ptr<float>(), stream()),
             "hash_grid_bwd_table");
  return grad;
}

at::Tensor hash_grid_bwd_x_t(const at::Tensor& x, const at::Tensor& table, const at::Tensor& grad_out,
                             const LevelArgs& a) {
  check_points(x);
  FMN_CHECK_INPUT(grad_out, at::kFloat);
  TORCH_CHECK(table.is_cuda() && table.is_contiguous() && table.dim() == 2, "table must be a contiguous CUDA [P, F]");
  const c10::cuda::CUDAGuard guard(x.device());
  const GridLevels lv = to_levels(a);
  const int F = static_cast<int>(table.size(1));
  auto gx = at::empty_like(x);
  cudaError_t err;
  if (table.scalar_type() == at::kFloat) {
    err = hash_grid_bwd_x(x.data_ptr<float>(), table.data_ptr<float>(), grad_out.data_ptr<float>(), x.size(0), F, lv,
                          gx.data_ptr<float>(), stream());
  } else {
    TORCH_CHECK(table.scalar_type() == at::kHalf, "table must be float32 or float16, got ", table.scalar_type());
    err = hash_grid_bwd_x(x.data_ptr<float>(), reinterpret_cast<const __half*>(table.data_ptr<at::Half>()),
                          grad_out.data_ptr<float>(), x.size(0), F, lv, gx.data_ptr<float>(), stream());
  }
  check_cuda(err, "hash_grid_bwd_x");
  return gx;
}

// ------------------------------------------------------------------ nearest triangle
std::tuple<at::Tensor, at::Tensor, at::Tensor> bvh_build_t(const at::Tensor& vertices, const at::Tensor& faces_in) {
  FMN_CHECK_INPUT(vertices, at::kFloat);
  TORCH_CHECK(vertices.dim() == 3 && vertices.size(2) == 3, "vertices must be [K, V, 3], got ", vertices.sizes());
  TORCH_CHECK(faces_in.is_cuda() && faces_in.dim() == 2 && faces_in.size(1) == 3, "faces must be CUDA [T, 3], got ",
              faces_in.sizes());
  const c10::cuda::CUDAGuard guard(vertices.device());
  const auto faces = faces_in.to(at::kInt).contiguous();
  const int64_t K = vertices.size(0), V = vertices.size(1), T = faces.size(0);
  TORCH_CHECK(T >= 1 && T < (1LL << 30) && K < (1LL << 31), "bvh: need 1 <= T < 2^30 faces, got ", T);
  const auto lo = vertices.amin(1).contiguous(), hi = vertices.amax(1).contiguous();  // [K, 3]
  auto keys = at::empty({K * T}, vertices.options().dtype(at::kLong));
  check_cuda(bvh_morton_keys(vertices.data_ptr<float>(), faces.data_ptr<int32_t>(), lo.data_ptr<float>(),
                             hi.data_ptr<float>(), static_cast<int>(K), static_cast<int>(V), static_cast<int>(T),
                             keys.data_ptr<int64_t>(), stream()),
             "bvh_morton_keys");
  auto sorted = at::sort(keys);
  const auto sorted_keys = std::get<0>(sorted).contiguous(), perm = std::get<1>(sorted).contiguous();
  const int64_t n_int = K * std::max<int64_t>(T - 1, 0);
  const auto iopt = vertices.options().dtype(at::kInt);
  auto nodes = at::empty({n_int, 16}, iopt);  // BvhNode = 16 x 4 bytes
  auto tris = at::empty({K * T, 9}, vertices.options());
  auto leaf_face = at::empty({K * T}, iopt);
  auto node_parent = at::empty({n_int}, iopt), leaf_parent = at::empty({K * T}, iopt), flags = at::empty({n_int}, iopt);
  check_cuda(bvh_build(sorted_keys.data_ptr<int64_t>(), perm.data_ptr<int64_t>(), vertices.data_ptr<float>(),
                       faces.data_ptr<int32_t>(), static_cast<int>(K), static_cast<int>(V), static_cast<int>(T),
                       reinterpret_cast<BvhNode*>(nodes.data_ptr<int32_t>()), tris.data_ptr<float>(),
                       leaf_face.data_ptr<int32_t>(), node_parent.data_ptr<int32_t>(), leaf_parent.data_ptr<int32_t>(),
                       flags.data_ptr<int32_t>(), stream()),
             "bvh_build");
  return {nodes, tris, leaf_face};
}

std::tuple<at::Tensor, at::Tensor> nearest_triangle_t(const at::Tensor& points, const at::Tensor& slots,
                                                      const at::Tensor& nodes, const at::Tensor& tris,
                                                      const at::Tensor& leaf_face, int64_t K, int64_t T,
                                                      bool sort_by_slot) {
  check_points(points);
  FMN_CHECK_INPUT(slots, at::kLong);
  FMN_CHECK_INPUT(nodes, at::kInt);
  FMN_CHECK_INPUT(tris, at::kFloat);
  FMN_CHECK_INPUT(leaf_face, at::kInt);
  TORCH_CHECK(slots.dim() == 1 && slots.size(0) == points.size(0), "slots must be [N], got ", slots.sizes());
  TORCH_CHECK(tris.size(0) == K * T && nodes.size(0) == K * std::max<int64_t>(T - 1, 0), "bvh does not match K, T");
  const c10::cuda::CUDAGuard guard(points.device());
  const int64_t n = points.size(0);
  auto face = at::empty({n}, slots.options());
  auto dist = at::empty({n}, points.options());
  at::Tensor order;
  if (sort_by_slot && n > 0) order = std::get<1>(at::sort(slots, /*stable=*/true, 0, false)).contiguous();
  check_cuda(nearest_triangle(points.data_ptr<float>(), slots.data_ptr<int64_t>(),
                              order.defined() ? order.data_ptr<int64_t>() : nullptr, n,
                              reinterpret_cast<const BvhNode*>(nodes.data_ptr<int32_t>()), tris.data_ptr<float>(),
                              leaf_face.data_ptr<int32_t>(), static_cast<int>(K), static_cast<int>(T),
                              face.data_ptr<int64_t>(), dist.data_ptr<float>(), stream()),
             "nearest_triangle");
  return {face, dist};
}

at::Tensor first_hit_t(const at::Tensor& origins, const at::Tensor& dirs, const at::Tensor& slots,
                       const at::Tensor& nodes, const at::Tensor& tris, int64_t K, int64_t T) {
  check_points(origins);
  check_points(dirs);
  FMN_CHECK_INPUT(slots, at::kLong);
  FMN_CHECK_INPUT(nodes, at::kInt);
  FMN_CHECK_INPUT(tris, at::kFloat);
  TORCH_CHECK(dirs.size(0) == origins.size(0) && slots.dim() == 1 && slots.size(0) == origins.size(0),
              "first_hit: origins, dirs [N, 3] and slots [N] must agree, got ", origins.sizes(), dirs.sizes(), slots.sizes());
  TORCH_CHECK(tris.size(0) == K * T && nodes.size(0) == K * std::max<int64_t>(T - 1, 0), "bvh does not match K, T");
  const c10::cuda::CUDAGuard guard(origins.device());
  auto t = at::empty({origins.size(0)}, origins.options());
  check_cuda(ray_first_hit(origins.data_ptr<float>(), dirs.data_ptr<float>(), slots.data_ptr<int64_t>(), origins.size(0),
                           reinterpret_cast<const BvhNode*>(nodes.data_ptr<int32_t>()), tris.data_ptr<float>(),
                           static_cast<int>(K), static_cast<int>(T), t.data_ptr<float>(), stream()),
             "ray_first_hit");
  return t;
}

// ------------------------------------------------------------------ marching
std::tuple<at::Tensor, at::Tensor, at::Tensor> march_rays_t(const at::Tensor& origins, const at::Tensor& dirs,
                                                            const at::Tensor& aabb, const at::Tensor& grid_in,
                                                            double dt, int64_t max_steps) {
  check_points(origins);
  check_points(dirs);
  FMN_CHECK_INPUT(aabb, at::kFloat);
  TORCH_CHECK(aabb.numel() == 6, "aabb must be [6], got ", aabb.sizes());
  TORCH_CHECK(dirs.size(0) == origins.size(0), "origins and dirs differ: ", origins.sizes(), " vs ", dirs.sizes());
  TORCH_CHECK(grid_in.is_cuda() && grid_in.dim() == 3 && grid_in.size(0) == grid_in.size(1) &&
                  grid_in.size(1) == grid_in.size(2),
              "grid must be a CUDA [R, R, R], got ", grid_in.sizes());
  TORCH_CHECK(max_steps >= 0 && max_steps < (1LL << 24), "max_steps out of range: ", max_steps);
  const c10::cuda::CUDAGuard guard(origins.device());
  const auto grid = grid_in.to(at::kByte).contiguous();  // bool -> uint8 is a view-free reinterpret by value
  const int R = static_cast<int>(grid.size(0));
  const int64_t n = origins.size(0);
  const float dt_f = static_cast<float>(dt), half_f = static_cast<float>(0.5 * dt);
  auto counts = at::empty({n}, origins.options().dtype(at::kLong));
  check_cuda(march_count(origins.data_ptr<float>(), dirs.data_ptr<float>(), n, aabb.data_ptr<float>(),
                         grid.data_ptr<uint8_t>(), R, dt_f, static_cast<int>(max_steps), counts.data_ptr<int64_t>(),
                         stream()),
             "march_count");
  const auto incl = at::cumsum(counts, 0);
  const int64_t total = n > 0 ? incl[n - 1].item<int64_t>() : 0;  // one sync: the output size
  const auto offsets = (incl - counts).contiguous();
  auto ray_indices = at::empty({total}, counts.options());
  auto t_starts = at::empty({total}, origins.options()), t_ends = at::empty({total}, origins.options());
  if (total > 0) {
    check_cuda(march_fill(origins.data_ptr<float>(), dirs.data_ptr<float>(), n, aabb.data_ptr<float>(),
                          grid.data_ptr<uint8_t>(), R, dt_f, half_f, static_cast<int>(max_steps),
                          offsets.data_ptr<int64_t>(), ray_indices.data_ptr<int64_t>(), t_starts.data_ptr<float>(),
                          t_ends.data_ptr<float>(), stream()),
               "march_fill");
  }
  return {ray_indices, t_starts, t_ends};
}

// ------------------------------------------------------------------ compositing
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> composite_fwd_t(
    const at::Tensor& sigmas, const at::Tensor& rgbs, const at::Tensor& t_starts, const at::Tensor& t_ends,
    const at::Tensor& ray_indices, int64_t n_rays) {
  FMN_CHECK_INPUT(sigmas, at::kFloat);
  FMN_CHECK_INPUT(rgbs, at::kFloat);
  FMN_CHECK_INPUT(t_starts, at::kFloat);
  FMN_CHECK_INPUT(t_ends, at::kFloat);
  FMN_CHECK_INPUT(ray_indices, at::kLong);
  const int64_t S = sigmas.size(0);
  TORCH_CHECK(sigmas.dim() == 1 && rgbs.dim() == 2 && rgbs.size(0) == S && rgbs.size(1) == 3 &&
                  t_starts.numel() == S && t_ends.numel() == S && ray_indices.numel() == S,
              "composite: sigmas [S], rgbs [S, 3], t_starts/t_ends/ray_indices [S]; got ", sigmas.sizes(), ", ",
              rgbs.sizes(), ", ", t_starts.sizes(), ", ", t_ends.sizes(), ", ", ray_indices.sizes());
  const c10::cuda::CUDAGuard guard(sigmas.device());
  // first sample of every ray (ray_indices sorted): ray_start [n_rays + 1]
  const auto ray_start = at::searchsorted(ray_indices, at::arange(n_rays + 1, ray_indices.options())).contiguous();
  auto rgb = at::empty({n_rays, 3}, sigmas.options());
  auto opacity = at::empty({n_rays}, sigmas.options()), depth = at::empty({n_rays}, sigmas.options());
  auto weights = at::empty({S}, sigmas.options());
  check_cuda(composite_fwd(sigmas.data_ptr<float>(), rgbs.data_ptr<float>(), t_starts.data_ptr<float>(),
                           t_ends.data_ptr<float>(), ray_start.data_ptr<int64_t>(), n_rays, rgb.data_ptr<float>(),
                           opacity.data_ptr<float>(), depth.data_ptr<float>(), weights.data_ptr<float>(), stream()),
             "composite_fwd");
  return {rgb, opacity, depth, weights, ray_start};
}

std::tuple<at::Tensor, at::Tensor> composite_bwd_t(const at::Tensor& sigmas, const at::Tensor& rgbs,
                                                   const at::Tensor& t_starts, const at::Tensor& t_ends,
                                                   const at::Tensor& ray_start, const at::Tensor& weights,
                                                   const at::Tensor& g_rgb, const std::optional<at::Tensor>& g_opacity,
                                                   const std::optional<at::Tensor>& g_depth,
                                                   const std::optional<at::Tensor>& g_weights) {
  FMN_CHECK_INPUT(ray_start, at::kLong);
  FMN_CHECK_INPUT(weights, at::kFloat);
  FMN_CHECK_INPUT(g_rgb, at::kFloat);
  const int64_t n_rays = ray_start.numel() - 1;
  TORCH_CHECK(g_rgb.size(0) == n_rays, "g_rgb must be [R, 3], got ", g_rgb.sizes());
  const auto opt_ptr = [&](const std::optional<at::Tensor>& t, int64_t n, const char* name) -> const float* {
    if (!t.has_value() || !t->defined()) return nullptr;
    FMN_CHECK_INPUT(*t, at::kFloat);
    TORCH_CHECK(t->numel() == n, name, " has ", t->numel(), " elements, expected ", n);
    return t->data_ptr<float>();
  };
  const c10::cuda::CUDAGuard guard(sigmas.device());
  auto g_sigmas = at::empty_like(sigmas), g_rgbs = at::empty_like(rgbs);
  check_cuda(composite_bwd(sigmas.data_ptr<float>(), rgbs.data_ptr<float>(), t_starts.data_ptr<float>(),
                           t_ends.data_ptr<float>(), ray_start.data_ptr<int64_t>(), n_rays, weights.data_ptr<float>(),
                           g_rgb.data_ptr<float>(), opt_ptr(g_opacity, n_rays, "g_opacity"),
                           opt_ptr(g_depth, n_rays, "g_depth"), opt_ptr(g_weights, sigmas.numel(), "g_weights"),
                           g_sigmas.data_ptr<float>(), g_rgbs.data_ptr<float>(), stream()),
             "composite_bwd");
  return {g_sigmas, g_rgbs};
}

}  // namespace fmn
