#pragma once
/// @file
/// The math of one monotone rational-quadratic spline (Durkan, Bekasov, Murray & Papamakarios 2019,
/// "Neural Spline Flows"), the elementwise map of RationalQuadraticTransformer: its knots from the
/// 3K − 1 raw parameters, its value, inverse and log-slope in a bin, and the partial derivatives
/// its backward chains through.
///
/// Notation, for the bin [x_k, x_k + w] ↦ [y_k, y_k + h] with knot derivatives β = δ_k (left) and
/// γ = δ_{k+1} (right):
///   s = h / w (the bin's slope),  ξ = (u − x_k) / w ∈ [0, 1],  q = ξ(1 − ξ),  E = γ + β − 2s
///   N = h (s ξ² + β q),  D = s + E q,  x = y_k + N / D
///   M = γ ξ² + 2 s q + β (1 − ξ)²,  ∂x/∂u = s² M / D²,  log|∂x/∂u| = 2 log s + log M − 2 log D
/// At ξ = 0: x = y_k and ∂x/∂u = β; at ξ = 1: x = y_k + h and ∂x/∂u = γ, so neighbouring bins join
/// with a continuous value and derivative.

#include <algorithm>
#include <cmath>
#include <vector>

#include "knead/core/types.hpp"

namespace knead::detail {

/// One bin of a spline: left knot (x0, y0), width w, height h, knot derivatives d0 (left) and d1
/// (right).
template <class T>
struct RationalQuadraticBin {
  T x0, w, y0, h, d0, d1;
};

/// ∂L/∂ of the bin's inputs for a cotangent (∂L/∂x, ∂L/∂log|∂x/∂u|) at one point.
template <class T>
struct RationalQuadraticBinGrad {
  T u, x0, w, y0, h, d0, d1;
};

/// ξ ∈ [0, 1] of u in the bin (clamped against rounding).
template <class T>
T bin_position(const RationalQuadraticBin<T>& bin, T u) {
  return std::clamp((u - bin.x0) / bin.w, T(0), T(1));
}

/// x = y_k + N / D at ξ (see the file comment).
template <class T>
T bin_value(const RationalQuadraticBin<T>& bin, T xi) {
  const T s = bin.h / bin.w, q = xi * (T(1) - xi);
  const T numerator = bin.h * (s * xi * xi + bin.d0 * q);
  const T denominator = s + (bin.d1 + bin.d0 - T(2) * s) * q;
  return bin.y0 + numerator / denominator;
}

/// log|∂x/∂u| = 2 log s + log M − 2 log D at ξ.
template <class T>
T bin_log_slope(const RationalQuadraticBin<T>& bin, T xi) {
  const T s = bin.h / bin.w, q = xi * (T(1) - xi), one_minus = T(1) - xi;
  const T m = bin.d1 * xi * xi + T(2) * s * q + bin.d0 * one_minus * one_minus;
  const T denominator = s + (bin.d1 + bin.d0 - T(2) * s) * q;
  return T(2) * std::log(s) + std::log(m) - T(2) * std::log(denominator);
}

/// ξ with bin_value(ξ) = x. With Δ = x − y_k, x − y_k = N / D reads
///   Δ (s + E ξ − E ξ²) = h (s ξ² + β ξ − β ξ²),
/// the quadratic a ξ² + b ξ + c = 0 with
///   a = h (s − β) + Δ E,  b = h β − Δ E,  c = −s Δ.
/// Its root in [0, 1] is (−b + √(b² − 4ac)) / (2a), computed as 2c / (−b − √(b² − 4ac)) (the same
/// number, with no cancellation when a → 0; −b − √… < 0 since c ≤ 0 ≤ b² − 4ac).
template <class T>
T bin_inverse_position(const RationalQuadraticBin<T>& bin, T x) {
  const T s = bin.h / bin.w, delta = x - bin.y0, e = bin.d1 + bin.d0 - T(2) * s;
  const T a = bin.h * (s - bin.d0) + delta * e;
  const T b = bin.h * bin.d0 - delta * e;
  const T c = -s * delta;
  const T discriminant = std::max(b * b - T(4) * a * c, T(0));
  const T root = T(2) * c / (-b - std::sqrt(discriminant));
  return std::clamp(root, T(0), T(1));
}

/// ∂L/∂(u, x_k, w, y_k, h, β, γ) at ξ for the cotangent gx = ∂L/∂x, gl = ∂L/∂log|∂x/∂u|.
/// Partials in (ξ, s, h, β, γ) with s and h independent (x = y_k + N/D, ld = 2 log s + log M −
/// 2 log D):
///   N_ξ = h (2sξ + β(1 − 2ξ)),  N_s = h ξ²,  N_h = s ξ² + β q,  N_β = h q
///   D_ξ = E (1 − 2ξ),           D_s = 1 − 2q,  D_β = D_γ = q
///   M_ξ = 2γξ + 2s(1 − 2ξ) − 2β(1 − ξ),  M_s = 2q,  M_β = (1 − ξ)²,  M_γ = ξ²
///   x_v = (N_v − (N/D) D_v) / D;   ld_ξ = M_ξ/M − 2 D_ξ/D,  ld_s = 2/s + M_s/M − 2 D_s/D,
///   ld_β = M_β/M − 2q/D,  ld_γ = M_γ/M − 2q/D,  ld_h = 0
/// then through ξ = (u − x_k)/w and s = h/w (G_v = gx x_v + gl ld_v):
///   ∂L/∂u = G_ξ / w,  ∂L/∂x_k = −G_ξ / w,  ∂L/∂w = −(G_ξ ξ + G_s s) / w,
///   ∂L/∂h = gx N_h / D + G_s / w,  ∂L/∂y_k = gx,  ∂L/∂β = G_β,  ∂L/∂γ = G_γ.
template <class T>
RationalQuadraticBinGrad<T> bin_gradient(const RationalQuadraticBin<T>& bin, T xi, T gx, T gl) {
  const T s = bin.h / bin.w, q = xi * (T(1) - xi), one_minus = T(1) - xi, beta = bin.d0, gamma = bin.d1;
  const T e = gamma + beta - T(2) * s;
  const T n = bin.h * (s * xi * xi + beta * q), d = s + e * q;
  const T m = gamma * xi * xi + T(2) * s * q + beta * one_minus * one_minus;
  const T ratio = n / d;
  const T n_xi = bin.h * (T(2) * s * xi + beta * (T(1) - T(2) * xi)), d_xi = e * (T(1) - T(2) * xi);
  const T n_s = bin.h * xi * xi, d_s = T(1) - T(2) * q;
  const T n_h = s * xi * xi + beta * q, n_beta = bin.h * q;
  const T m_xi = T(2) * gamma * xi + T(2) * s * (T(1) - T(2) * xi) - T(2) * beta * one_minus;
  const T g_xi = gx * (n_xi - ratio * d_xi) / d + gl * (m_xi / m - T(2) * d_xi / d);
  const T g_s = gx * (n_s - ratio * d_s) / d + gl * (T(2) / s + T(2) * q / m - T(2) * d_s / d);
  const T g_beta = gx * (n_beta - ratio * q) / d + gl * (one_minus * one_minus / m - T(2) * q / d);
  const T g_gamma = gx * (-ratio * q) / d + gl * (xi * xi / m - T(2) * q / d);
  RationalQuadraticBinGrad<T> g;
  g.u = g_xi / bin.w;
  g.x0 = -g.u;
  g.w = -(g_xi * xi + g_s * s) / bin.w;
  g.y0 = gx;
  g.h = gx * n_h / d + g_s / bin.w;
  g.d0 = g_beta;
  g.d1 = g_gamma;
  return g;
}

/// ∂log|∂x/∂u| / ∂u at ξ: ld_ξ / w (see bin_gradient).
template <class T>
T bin_log_slope_derivative(const RationalQuadraticBin<T>& bin, T xi) {
  return bin_gradient(bin, xi, T(0), T(1)).u;
}

/// softplus(v) = log(1 + e^v), without overflow: max(v, 0) + log1p(e^{−|v|}).
template <class T>
T softplus(T v) {
  return std::max(v, T(0)) + std::log1p(std::exp(-std::abs(v)));
}
/// σ(v) = 1 / (1 + e^{−v}) = softplus'(v), without overflow.
template <class T>
T logistic(T v) {
  if (v >= T(0)) return T(1) / (T(1) + std::exp(-v));
  const T e = std::exp(v);
  return e / (T(1) + e);
}

/// The knots of one element's spline, built from its raw parameters; the buffers are sized once
/// (no allocation when the bin count repeats).
template <class T>
struct RationalQuadraticKnots {
  std::vector<T> raw;                // 3K − 1 raw parameters: K widths, K heights, K − 1 derivatives
  std::vector<T> width_p, height_p;  // softmax of the raw widths and heights (K each)
  std::vector<T> xs, ys, ds;         // K + 1 knot positions, heights, derivatives
  std::vector<T> grad_w, grad_h;     // K each: ∂L/∂(bin widths), ∂L/∂(bin heights)

  void resize(Index bins) {
    const auto k = std::size_t(bins);
    raw.resize(3 * k - 1);
    width_p.resize(k);
    height_p.resize(k);
    xs.resize(k + 1);
    ys.resize(k + 1);
    ds.resize(k + 1);
    grad_w.resize(k);
    grad_h.resize(k);
  }

  /// p = softmax(v) (shifted by max v, so no exponent overflows).
  static void softmax(const T* v, Index k, T* p) {
    const T top = *std::max_element(v, v + k);
    T total(0);
    for (Index j = 0; j < k; ++j) total += (p[j] = std::exp(v[j] - top));
    for (Index j = 0; j < k; ++j) p[j] /= total;
  }

  /// Knots on [−B, B] from `raw`:
  ///   w_j = 2B (m_w + (1 − K m_w) softmax(a)_j),  x_0 = −B, x_{j+1} = x_j + w_j, x_K = B (exactly)
  ///   (heights the same with m_h), δ_0 = δ_K = 1, δ_j = m_δ + softplus(c_{j−1} + c₀)
  /// with c₀ = log(e^{1 − m_δ} − 1), so a raw derivative 0 gives δ = 1 and all-zero raw parameters
  /// are the identity map (up to rounding).
  void build(Index k, T bound, T min_width, T min_height, T min_derivative) {
    softmax(raw.data(), k, width_p.data());
    softmax(raw.data() + k, k, height_p.data());
    const T width_scale = T(2) * bound * (T(1) - T(k) * min_width);
    const T height_scale = T(2) * bound * (T(1) - T(k) * min_height);
    xs[0] = ys[0] = -bound;
    for (Index j = 0; j + 1 < k; ++j) {
      xs[std::size_t(j + 1)] =
          xs[std::size_t(j)] + T(2) * bound * min_width + width_scale * width_p[std::size_t(j)];
      ys[std::size_t(j + 1)] =
          ys[std::size_t(j)] + T(2) * bound * min_height + height_scale * height_p[std::size_t(j)];
    }
    xs[std::size_t(k)] = ys[std::size_t(k)] = bound;
    const T offset = derivative_offset(min_derivative);
    ds[0] = ds[std::size_t(k)] = T(1);
    for (Index j = 1; j < k; ++j)
      ds[std::size_t(j)] = min_derivative + softplus(raw[std::size_t(2 * k + j - 1)] + offset);
  }

  static T derivative_offset(T min_derivative) { return std::log(std::expm1(T(1) - min_derivative)); }

  /// The bin holding v among the K + 1 `knots`: the count of interior knots ≤ v (0 … K − 1), with
  /// no branch on v.
  static Index locate(const std::vector<T>& knots, Index k, T v) {
    Index bin = 0;
    for (Index j = 1; j < k; ++j) bin += Index(knots[std::size_t(j)] <= v);
    return bin;
  }

  [[nodiscard]] RationalQuadraticBin<T> bin(Index b) const {
    const auto j = std::size_t(b);
    return {xs[j], xs[j + 1] - xs[j], ys[j], ys[j + 1] - ys[j], ds[j], ds[j + 1]};
  }

  /// ∂L/∂raw (written to `out`, 3K − 1 entries at out[p·stride]) for ∂L/∂ of bin b's inputs g.
  /// Knot x_j = −B + Σ_{i<j} w_i, so ∂L/∂w_i = g.w [i = b] + g.x0 [i < b] (heights alike); then
  ///   w_i = 2B (m_w + (1 − K m_w) p_i):   ∂L/∂p_i = 2B (1 − K m_w) ∂L/∂w_i
  ///   p = softmax(a):                    ∂L/∂a_i = p_i (∂L/∂p_i − Σ_l p_l ∂L/∂p_l)
  ///   δ_j = m_δ + softplus(c_{j−1} + c₀): ∂L/∂c_{j−1} = ∂L/∂δ_j σ(c_{j−1} + c₀)  (j = b, b + 1 interior)
  void raw_gradient(Index k, Index b, const RationalQuadraticBinGrad<T>& g, T bound, T min_width,
                    T min_height, T min_derivative, T* out, Index stride) const {
    auto softmax_gradient = [&](const std::vector<T>& p, T grad_bin, T grad_left, T scale, Index first) {
      T mean(0);
      for (Index i = 0; i < k; ++i) {
        const T gi = scale * ((i == b ? grad_bin : T(0)) + (i < b ? grad_left : T(0)));
        mean += p[std::size_t(i)] * gi;
      }
      for (Index i = 0; i < k; ++i) {
        const T gi = scale * ((i == b ? grad_bin : T(0)) + (i < b ? grad_left : T(0)));
        out[(first + i) * stride] = p[std::size_t(i)] * (gi - mean);
      }
    };
    softmax_gradient(width_p, g.w, g.x0, T(2) * bound * (T(1) - T(k) * min_width), 0);
    softmax_gradient(height_p, g.h, g.y0, T(2) * bound * (T(1) - T(k) * min_height), k);
    const T offset = derivative_offset(min_derivative);
    for (Index j = 1; j < k; ++j) {
      const T grad_d = (j == b ? g.d0 : T(0)) + (j == b + 1 ? g.d1 : T(0));
      out[(2 * k + j - 1) * stride] = grad_d * logistic(raw[std::size_t(2 * k + j - 1)] + offset);
    }
  }
};

}  // namespace knead::detail
