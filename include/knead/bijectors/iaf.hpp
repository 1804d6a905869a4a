#pragma once
/// @file
/// Iaf<T>: the inverse autoregressive flow layer (Kingma, Salimans, Jozefowicz, Chen, Sutskever
/// and Welling 2016, "Improved Variational Inference with Inverse Autoregressive Flow").

#include <utility>

#include "knead/bijectors/invert.hpp"
#include "knead/bijectors/maf.hpp"

namespace knead {

/// Inverse autoregressive flow: a MAF with its directions swapped, so sampling is the fast,
/// one-pass direction (the use in the paper: a flexible variational posterior whose samples and
/// their densities come in one pass) and density evaluation of arbitrary data is sequential.
///
/// With μ, α = guard(a) from MADE and `order` as in Maf:
/// - forward (sampling, noise → data):  x_i = (u_i − μ_i(u_{<i}))·exp(−α_i(u_{<i})), one MADE pass
///   (the paper's x_i = u_i·σ_i + m_i with σ_i = exp(−α_i), m_i = −μ_i·exp(−α_i));
/// - inverse (density, data → noise):   u_i = x_i·exp(α_i(u_{<i})) + μ_i(u_{<i}), D sequential passes;
/// - log|det ∂x/∂u| = −Σ_i α_i(u_{<i}).
///
/// Parameters and options are Maf's; error messages name Iaf's functions (Invert tells the Maf it
/// wraps to name itself as its inverse, see Autoregressive::name_as_inverse).
template <class T>
using Iaf = Invert<Maf<T>>;

/// An IAF layer on `dim` dimensions.
template <class T>
[[nodiscard]] Iaf<T> make_iaf(Index dim, MafOptions<T> options = {}) {
  // construction errors name Iaf too
  return Iaf<T>(Maf<T>(dim, std::move(options), typename Maf<T>::NamedAsIaf{}));
}

static_assert(check_bijector<Iaf<double>>());
static_assert(check_conditional_bijector<Iaf<double>>());

}  // namespace knead
