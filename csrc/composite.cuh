// Volume compositing of one ray's packed samples [b, e), forward and backward (host + device).
//   tau_j = sigma_j (t1_j - t0_j), alpha_j = 1 - exp(-tau_j), w_j = T_j alpha_j,
//   T_{j+1} = T_j exp(-tau_j); rgb = sum w c, opacity = sum w, depth = sum w (t0 + t1) / 2.
// Backward, with the per-sample cotangent of w_j
//   gw_j = <g_rgb, c_j> + g_opacity + g_depth m_j + g_weights_j      (m_j: midpoint)
// and dw_j/dtau_j = T_{j+1}, dw_i/dtau_j = -w_i (i > j):
//   dL/dsigma_j = (t1_j - t0_j) (gw_j T_{j+1} - sum_{i>j} gw_i w_i),   dL/dc_j = w_j g_rgb.
// tau_j is capped at FMN_TAU_MAX (as the torch twin caps it); a capped sample gets no
// sigma gradient (the cap's derivative), so a diverging density cannot return inf/NaN.
#pragma once

#include <cstdint>

#include "common.cuh"

namespace fmn {

#define FMN_TAU_MAX 50.0f

FMN_HD float capped_tau(float sigma, float delta) { return fminf(sigma * delta, FMN_TAU_MAX); }

FMN_HD void composite_ray_fwd(int64_t r, int64_t b, int64_t e, const float* sigmas, const float* rgbs,
                              const float* t_starts, const float* t_ends, float* rgb, float* opacity, float* depth,
                              float* weights) {
  float trans = 1.0f, c0 = 0.0f, c1 = 0.0f, c2 = 0.0f, op = 0.0f, dep = 0.0f;
  for (int64_t j = b; j < e; ++j) {
    const float t0 = t_starts[j], t1 = t_ends[j];
    const float decay = expf(-capped_tau(sigmas[j], t1 - t0));
    const float w = trans * (1.0f - decay);
    weights[j] = w;
    c0 += w * rgbs[j * 3];
    c1 += w * rgbs[j * 3 + 1];
    c2 += w * rgbs[j * 3 + 2];
    op += w;
    dep += w * (0.5f * (t0 + t1));
    trans *= decay;
  }
  rgb[r * 3] = c0;
  rgb[r * 3 + 1] = c1;
  rgb[r * 3 + 2] = c2;
  opacity[r] = op;
  depth[r] = dep;
}

// Cotangent of w_j (any of g_opacity, g_depth, g_weights may be null = zero).
FMN_HD float weight_cotangent(int64_t j, int64_t r, const float* rgbs, const float* t_starts, const float* t_ends,
                              const float* g_rgb, const float* g_opacity, const float* g_depth,
                              const float* g_weights) {
  float gw = g_rgb[r * 3] * rgbs[j * 3] + g_rgb[r * 3 + 1] * rgbs[j * 3 + 1] + g_rgb[r * 3 + 2] * rgbs[j * 3 + 2];
  if (g_opacity) gw += g_opacity[r];
  if (g_depth) gw += g_depth[r] * (0.5f * (t_starts[j] + t_ends[j]));
  if (g_weights) gw += g_weights[j];
  return gw;
}

FMN_HD void composite_ray_bwd(int64_t r, int64_t b, int64_t e, const float* sigmas, const float* rgbs,
                              const float* t_starts, const float* t_ends, const float* weights, const float* g_rgb,
                              const float* g_opacity, const float* g_depth, const float* g_weights, float* g_sigmas,
                              float* g_rgbs) {
  float total = 0.0f;
  for (int64_t j = b; j < e; ++j)
    total += weights[j] * weight_cotangent(j, r, rgbs, t_starts, t_ends, g_rgb, g_opacity, g_depth, g_weights);
  float trans = 1.0f, prefix = 0.0f;
  for (int64_t j = b; j < e; ++j) {
    const float delta = t_ends[j] - t_starts[j];
    const float tau = capped_tau(sigmas[j], delta);
    trans *= expf(-tau);  // T_{j+1}
    const float w = weights[j];
    const float gw = weight_cotangent(j, r, rgbs, t_starts, t_ends, g_rgb, g_opacity, g_depth, g_weights);
    prefix += w * gw;
    g_sigmas[j] = tau < FMN_TAU_MAX ? delta * (gw * trans - (total - prefix)) : 0.0f;
    for (int c = 0; c < 3; ++c) g_rgbs[j * 3 + c] = w * g_rgb[r * 3 + c];
  }
}

}  // namespace fmn
