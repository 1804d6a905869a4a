#pragma once
/// @file
/// The layers of neural spline flows (Durkan, Bekasov, Murray & Papamakarios 2019, "Neural Spline
/// Flows"): the rational-quadratic spline transformer in a coupling layer (RQ-NSF (C)) and in an
/// autoregressive layer (RQ-NSF (AR)).
///
///   RationalQuadraticCoupling<T> layer(mask, {.hidden = {64, 64}, .spline = {.bins = 8, .bound = 3}});
///   RationalQuadraticAutoregressive<T> layer(dim, RationalQuadraticTransformer<T>({.bins = 8}), {{64, 64}});
///
/// The coupling's spline is set by CouplingOptions::spline; the autoregressive layer takes its
/// transformer. Both map the identity outside [−B, B] and check the spline's options when built.

#include "knead/bijectors/autoregressive.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/transformers/rational_quadratic.hpp"

namespace knead {

/// x_B = spline(u_B; θ(u_A)): one conditioner pass in either direction.
template <class T>
using RationalQuadraticCoupling = Coupling<T, RationalQuadraticTransformer<T>>;

/// x_i = spline(u_i; θ_i(x_{<i})) by one MADE: density in one pass, sampling in D sequential steps.
template <class T>
using RationalQuadraticAutoregressive = Autoregressive<T, RationalQuadraticTransformer<T>>;

static_assert(check_bijector<RationalQuadraticCoupling<double>>());
static_assert(check_bijector<RationalQuadraticAutoregressive<float>>());

}  // namespace knead
