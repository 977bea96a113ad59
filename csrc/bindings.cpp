// Python bindings of the fastminerf kernels. Only binds: see torch_ops.h / torch_ops.cpp.
#include <pybind11/stl.h>
#include <torch/extension.h>

#include "torch_ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "fastminerf CUDA kernels (csrc/)";
  pybind11::class_<fmn::LevelArgs>(m, "LevelArgs")
      .def(pybind11::init<std::vector<double>, std::vector<int64_t>, std::vector<int64_t>, std::vector<int64_t>,
                          std::vector<bool>>());
  m.def("hash_grid_fwd", &fmn::hash_grid_fwd_t);
  m.def("hash_grid_rows", &fmn::hash_grid_rows_t);
  m.def("hash_grid_bwd_table", &fmn::hash_grid_bwd_table_t);
  m.def("hash_grid_bwd_x", &fmn::hash_grid_bwd_x_t);
  m.def("bvh_build", &fmn::bvh_build_t);
  m.def("nearest_triangle", &fmn::nearest_triangle_t);
  m.def("first_hit", &fmn::first_hit_t);
  m.def("march_rays", &fmn::march_rays_t);
  m.def("composite_fwd", &fmn::composite_fwd_t);
  m.def("composite_bwd", &fmn::composite_bwd_t);
}
