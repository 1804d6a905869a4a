#pragma once
/// @file
/// Maf<T>: the masked autoregressive flow layer (Papamakarios, Pavlakou and Murray 2017, "Masked
/// Autoregressive Flow for Density Estimation"), the affine instance of Autoregressive.

#include <cstdint>
#include <utility>
#include <vector>

#include "knead/bijectors/autoregressive.hpp"
#include "knead/core/bijector.hpp"
#include "knead/nn/log_scale_guard.hpp"
#include "knead/nn/made.hpp"
#include "knead/transformers/affine.hpp"

namespace knead {

template <class T>
struct MafOptions {
  std::vector<Index> hidden = {64, 64};  ///< MADE hidden layer sizes, each at least D − 1
  InputOrder order{};                    ///< the order in which dimensions are generated
  LogScaleGuard<T> guard{};              ///< α = guard(a); a soft clamp by default
  bool identity_init = false;            ///< zero MADE's last layer: exactly the identity at the start
  std::uint64_t seed = 0;                ///< draws MADE's initial weights
  Index context_dim = 0;                 ///< rows of a context MADE reads: > 0 makes the layer conditional
};

/// Masked autoregressive flow: an affine map whose shift μ_i and log-scale α_i depend on the
/// dimensions before i in `order`, computed by one MADE; α = guard(a) for MADE's raw output a
/// (rows [0, D) of MADE's outputs are μ, rows [D, 2D) are a).
///
/// - forward (sampling, noise → data):  x_i = u_i·exp(α_i(x_{<i})) + μ_i(x_{<i}),
///   sequential in the order, but incremental: each MADE unit is computed once (the cost of about
///   one MADE pass, in D small steps).
/// - inverse (density, data → noise):   u_i = (x_i − μ_i(x_{<i}))·exp(−α_i(x_{<i})), one MADE pass.
/// - log|det ∂x/∂u| = Σ_i α_i (the Jacobian is triangular in the order with diagonal exp(α)).
///
/// Density evaluation is the fast direction, as in the paper; Iaf (iaf.hpp) is its inverse.
/// Autoregressive<T, AffineTransformer<T>> with MAF's options and names; its passes are MAF's
/// hand-flattened ones (see Autoregressive). Parameters are MADE's. Passes throw
/// std::invalid_argument on a wrong shape, an empty batch, a non-finite input, or a non-finite
/// result (exp(α) overflowed, which a guard bound prevents, or a parameter is not finite).
template <class T>
class Maf : public Autoregressive<T, AffineTransformer<T>> {
  using Base = Autoregressive<T, AffineTransformer<T>>;

 public:
  explicit Maf(Index dim, MafOptions<T> options = {})
      : Base(dim, AffineTransformer<T>(options.guard), base_options(options), "Maf", "Iaf", false) {}

  /// A Maf whose construction errors name Iaf, for make_iaf.
  struct NamedAsIaf {};
  Maf(Index dim, const MafOptions<T>& options, NamedAsIaf)
      : Base(dim, AffineTransformer<T>(options.guard), base_options(options), "Maf", "Iaf", true) {}

  static constexpr std::string_view name() { return "Maf"; }
  [[nodiscard]] const LogScaleGuard<T>& guard() const { return this->transformer().guard(); }

 private:
  static AutoregressiveOptions<T> base_options(const MafOptions<T>& options) {
    return {options.hidden, options.order, options.identity_init, options.seed, options.context_dim};
  }
};

static_assert(check_bijector<Maf<double>>());
static_assert(check_conditional_bijector<Maf<float>>());

}  // namespace knead
