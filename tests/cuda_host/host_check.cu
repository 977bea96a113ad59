// Runs the kernels' per-item code (csrc/*.cuh) serially on the CPU, so machines without a
// GPU can compare it with the torch twins (tests/test_cuda_host.py writes the inputs as raw
// little-endian arrays and reads the outputs back). Built with nvcc as host code with
// -Xcompiler -ffp-contract=off, so float operations round as on the GPU's *_rn intrinsics.
//
//   host_check hash      DIR n F P          (x, table, levels, grad_out -> rows, out, grad_table, grad_x)
//   host_check nearest   DIR K V T N        (verts, faces, points, slots -> face, dist)
//   host_check first_hit DIR K V T N        (verts, faces, origins, dirs, slots -> t)
//   host_check march     DIR N R max_steps dt half_dt   (origins, dirs, aabb, grid -> counts, t_starts, t_ends)
//   host_check composite DIR R S            (sigmas, rgbs, t_starts, t_ends, ray_start, g_* -> outputs, grads)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "bvh.cuh"
#include "composite.cuh"
#include "hashgrid.cuh"
#include "march.cuh"

using namespace fmn;

template <typename T>
static std::vector<T> read(const std::string& dir, const char* name, size_t n) {
  std::vector<T> v(n);
  FILE* f = std::fopen((dir + "/" + name).c_str(), "rb");
  if (!f || std::fread(v.data(), sizeof(T), n, f) != n) {
    std::fprintf(stderr, "cannot read %zu items from %s/%s\n", n, dir.c_str(), name);
    std::exit(2);
  }
  std::fclose(f);
  return v;
}

template <typename T>
static void write(const std::string& dir, const char* name, const std::vector<T>& v) {
  FILE* f = std::fopen((dir + "/" + name).c_str(), "wb");
  if (!f || std::fwrite(v.data(), sizeof(T), v.size(), f) != v.size()) {
    std::fprintf(stderr, "cannot write %s/%s\n", dir.c_str(), name);
    std::exit(2);
  }
  std::fclose(f);
}

static int hash(const std::string& dir, int64_t n, int F, int64_t P) {
  if (F != 2) return std::fprintf(stderr, "host check covers F = 2\n"), 2;
  const auto lvv = read<GridLevels>(dir, "levels", 1);
  const GridLevels& lv = lvv[0];
  const int L = lv.n_levels;
  const auto x = read<float>(dir, "x", n * 3);
  const auto table = read<float>(dir, "table", P * F);
  const auto g = read<float>(dir, "grad_out", n * L * F);
  std::vector<int64_t> rows(n * L * 8);
  std::vector<float> out(n * L * F), gt(P * F, 0.0f), gx(n * 3);
  for (int64_t i = 0; i < n; ++i) {
    for (int l = 0; l < L; ++l) {
      level_rows(&x[i * 3], l, lv, &rows[(i * L + l) * 8]);
      encode_level<float, 2>(&x[i * 3], table.data(), l, lv, &out[i * L * F + l * F]);
      scatter_level<2>(&x[i * 3], &g[i * L * F + l * F], l, lv, gt.data());
    }
    grad_point<float, 2>(&x[i * 3], table.data(), &g[i * L * F], lv, &gx[i * 3]);
  }
  write(dir, "rows", rows);
  write(dir, "out", out);
  write(dir, "grad_table", gt);
  write(dir, "grad_x", gx);
  return 0;
}

struct HostBvh {
  std::vector<BvhNode> nodes;
  std::vector<float> tris;
  std::vector<int32_t> leaf_face;
};

// The LBVH build of bvh_build.cu, item by item on the host.
static HostBvh build(const std::vector<float>& verts, const std::vector<int32_t>& faces, int K, int V, int T) {
  std::vector<float> lo(K * 3, INFINITY), hi(K * 3, -INFINITY);
  for (int k = 0; k < K; ++k)
    for (int v = 0; v < V; ++v)
      for (int d = 0; d < 3; ++d) {
        lo[k * 3 + d] = std::min(lo[k * 3 + d], verts[(static_cast<size_t>(k) * V + v) * 3 + d]);
        hi[k * 3 + d] = std::max(hi[k * 3 + d], verts[(static_cast<size_t>(k) * V + v) * 3 + d]);
      }
  const int64_t n_leaves = static_cast<int64_t>(K) * T, n_int = static_cast<int64_t>(K) * (T - 1);
  std::vector<int64_t> keys(n_leaves), perm(n_leaves), sorted(n_leaves);
  for (int64_t i = 0; i < n_leaves; ++i) morton_key(i, verts.data(), faces.data(), lo.data(), hi.data(), V, T, keys.data());
  std::iota(perm.begin(), perm.end(), 0);
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
  for (int64_t i = 0; i < n_leaves; ++i) sorted[i] = keys[perm[i]];
  std::vector<BvhNode> nodes(std::max<int64_t>(n_int, 1));
  std::vector<float> tris(n_leaves * 9);
  std::vector<int32_t> leaf_face(n_leaves), node_parent(std::max<int64_t>(n_int, 1)), leaf_parent(n_leaves),
      flags(std::max<int64_t>(n_int, 1), 0);
  for (int64_t i = 0; i < n_leaves; ++i) leaf_setup(i, perm.data(), verts.data(), faces.data(), V, T, tris.data(), leaf_face.data());
  if (T > 1) {
    for (int64_t i = 0; i < n_int; ++i) internal_node(i, sorted.data(), T, nodes.data(), node_parent.data(), leaf_parent.data());
    for (int64_t i = 0; i < n_leaves; ++i)
      refit_leaf(i, tris.data(), node_parent.data(), leaf_parent.data(), T, nodes.data(), flags.data());
  }
  return {nodes, tris, leaf_face};
}

static int nearest(const std::string& dir, int K, int V, int T, int64_t N) {
  const auto verts = read<float>(dir, "verts", static_cast<size_t>(K) * V * 3);
  const auto faces = read<int32_t>(dir, "faces", static_cast<size_t>(T) * 3);
  const auto points = read<float>(dir, "points", N * 3);
  const auto slots = read<int64_t>(dir, "slots", N);
  const HostBvh b = build(verts, faces, K, V, T);
  std::vector<int64_t> face(N);
  std::vector<float> dist(N);
  for (int64_t i = 0; i < N; ++i) {
    int f;
    float d2;
    nearest_point(load3(&points[i * 3]), slots[i], b.nodes.data(), b.tris.data(), b.leaf_face.data(), T, &f, &d2);
    face[i] = f;
    dist[i] = std::sqrt(d2);
  }
  write(dir, "face", face);
  write(dir, "dist", dist);
  return 0;
}

static int first_hit(const std::string& dir, int K, int V, int T, int64_t N) {
  const auto verts = read<float>(dir, "verts", static_cast<size_t>(K) * V * 3);
  const auto faces = read<int32_t>(dir, "faces", static_cast<size_t>(T) * 3);
  const auto o = read<float>(dir, "origins", N * 3), d = read<float>(dir, "dirs", N * 3);
  const auto slots = read<int64_t>(dir, "slots", N);
  const HostBvh b = build(verts, faces, K, V, T);
  std::vector<float> t(N);
  for (int64_t i = 0; i < N; ++i) {
    const float h = first_hit_ray(load3(&o[i * 3]), load3(&d[i * 3]), slots[i], b.nodes.data(), b.tris.data(), T);
    t[i] = h == FLT_MAX ? INFINITY : h;
  }
  write(dir, "t", t);
  return 0;
}

static int march(const std::string& dir, int64_t N, int R, int max_steps, float dt, float half_dt) {
  const auto o = read<float>(dir, "origins", N * 3);
  const auto d = read<float>(dir, "dirs", N * 3);
  const auto aabb = read<float>(dir, "aabb", 6);
  const auto grid = read<uint8_t>(dir, "grid", static_cast<size_t>(R) * R * R);
  std::vector<int64_t> counts(N), offsets(N);
  int64_t total = 0;
  for (int64_t r = 0; r < N; ++r) {
    counts[r] = march_ray(r, o.data(), d.data(), aabb.data(), grid.data(), R, dt, 0.0f, max_steps, 0, nullptr, nullptr, nullptr);
    offsets[r] = total;
    total += counts[r];
  }
  std::vector<int64_t> ri(total);
  std::vector<float> t0(total), t1(total);
  for (int64_t r = 0; r < N; ++r)
    march_ray(r, o.data(), d.data(), aabb.data(), grid.data(), R, dt, half_dt, max_steps, offsets[r], ri.data(), t0.data(), t1.data());
  write(dir, "ray_indices", ri);
  write(dir, "t_starts", t0);
  write(dir, "t_ends", t1);
  return 0;
}

static int composite(const std::string& dir, int64_t R, int64_t S) {
  const auto sig = read<float>(dir, "sigmas", S), rgbs = read<float>(dir, "rgbs", S * 3);
  const auto t0 = read<float>(dir, "t_starts", S), t1 = read<float>(dir, "t_ends", S);
  const auto start = read<int64_t>(dir, "ray_start", R + 1);
  const auto g_rgb = read<float>(dir, "g_rgb", R * 3), g_op = read<float>(dir, "g_opacity", R);
  const auto g_dep = read<float>(dir, "g_depth", R), g_w = read<float>(dir, "g_weights", S);
  std::vector<float> rgb(R * 3), op(R), dep(R), w(S), gs(S), gc(S * 3);
  for (int64_t r = 0; r < R; ++r) {
    composite_ray_fwd(r, start[r], start[r + 1], sig.data(), rgbs.data(), t0.data(), t1.data(), rgb.data(), op.data(), dep.data(), w.data());
    composite_ray_bwd(r, start[r], start[r + 1], sig.data(), rgbs.data(), t0.data(), t1.data(), w.data(), g_rgb.data(),
                      g_op.data(), g_dep.data(), g_w.data(), gs.data(), gc.data());
  }
  write(dir, "rgb", rgb);
  write(dir, "opacity", op);
  write(dir, "depth", dep);
  write(dir, "weights", w);
  write(dir, "g_sigmas", gs);
  write(dir, "g_rgbs", gc);
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 3) return std::fprintf(stderr, "usage: host_check OP DIR ARGS...\n"), 2;
  const std::string op = argv[1], dir = argv[2];
  const auto i = [&](int k) { return std::strtoll(argv[k], nullptr, 10); };
  if (op == "hash" && argc == 6) return hash(dir, i(3), static_cast<int>(i(4)), i(5));
  if (op == "nearest" && argc == 7) return nearest(dir, i(3), i(4), i(5), i(6));
  if (op == "first_hit" && argc == 7) return first_hit(dir, i(3), i(4), i(5), i(6));
  if (op == "march" && argc == 8)
    return march(dir, i(3), static_cast<int>(i(4)), static_cast<int>(i(5)), std::strtof(argv[6], nullptr), std::strtof(argv[7], nullptr));
  if (op == "composite" && argc == 5) return composite(dir, i(3), i(4));
  return std::fprintf(stderr, "bad arguments for %s\n", op.c_str()), 2;
}
