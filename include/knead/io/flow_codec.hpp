#pragma once
/// @file
/// The registry of the bijectors a flow file can hold: RegisteredBijectors<T> lists them, each with
/// its codec (include/knead/io/codecs/X.hpp, which has its node schema and tensors). Saving (which
/// bijector an AnyBijector holds), loading (which codec a node's "type" names) and the message for
/// an unknown type all come from this list; Chain and Invert are structural, handled by flow_io.hpp.
///
/// Adding a bijector to the format: write its codec, include it here and add it to the list.

#include <array>
#include <string>
#include <string_view>

#include "knead/io/codecs/act_norm.hpp"
#include "knead/io/codecs/batch_norm.hpp"
#include "knead/io/codecs/coupling.hpp"
#include "knead/io/codecs/elementwise_affine.hpp"
#include "knead/io/codecs/leaky_relu.hpp"
#include "knead/io/codecs/lu_linear.hpp"
#include "knead/io/codecs/maf.hpp"
#include "knead/io/codecs/neural_spline.hpp"
#include "knead/io/codecs/permute.hpp"
#include "knead/io/codecs/sigmoid.hpp"
#include "knead/io/codecs/support.hpp"
#include "knead/io/codecs/triangular_affine.hpp"

namespace knead::io {

namespace flow_detail {
template <class... Xs>
struct TypeList {};
}  // namespace flow_detail

/// Every bijector type with a codec, in the order the unknown-type message lists them. Each may
/// also appear inside an Invert (an IAF is an Invert<Maf>).
template <class T>
using RegisteredBijectors =
    flow_detail::TypeList<Affine<T>, Shift<T>, Scale<T>, TriangularAffine<T>, PReLU<T>, LeakyReLU<T>,
                          Sigmoid<T>, Permute<T>, LuLinear<T>, BatchNorm<T>, ActNorm<T>, Maf<T>,
                          AffineCoupling<T>, AdditiveCoupling<T>, RationalQuadraticCoupling<T>,
                          RationalQuadraticAutoregressive<T>>;

namespace flow_detail {

/// The node types of the structural bijectors, which have no codec.
inline constexpr std::string_view chain_type = "Chain";
inline constexpr std::string_view invert_type = "Invert";

template <class... Xs>
constexpr std::array<std::string_view, sizeof...(Xs)> type_names(TypeList<Xs...>) {
  return {Codec<Xs>::type_name...};
}

/// Whether the names are distinct and none is a structural type.
template <std::size_t N>
constexpr bool names_are_unambiguous(const std::array<std::string_view, N>& names) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == chain_type || names[i] == invert_type) return false;
    for (std::size_t j = 0; j < i; ++j)
      if (names[i] == names[j]) return false;
  }
  return true;
}
static_assert(names_are_unambiguous(type_names(RegisteredBijectors<double>{})),
              "knead: two registered codecs have the same type name, or one is Chain or Invert");

/// "A, B, …, Chain and Invert": every node type a file may hold, for error messages.
template <class T>
std::string known_types() {
  std::string out;
  for (const std::string_view name : type_names(RegisteredBijectors<T>{})) {
    out += name;
    out += ", ";
  }
  return out + std::string(chain_type) + " and " + std::string(invert_type);
}

}  // namespace flow_detail
}  // namespace knead::io
