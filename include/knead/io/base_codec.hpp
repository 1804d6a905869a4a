#pragma once
/// @file
/// A flow file's base distribution (docs/format.md, "base"): the node and tensors of a
/// StandardNormal, DiagonalNormal or MixtureOfGaussians, saved from a concrete base or an
/// AnyDistribution, loaded into an existing one, or built from a file's node. flow_io.hpp calls these
/// for the base of every flow it saves or loads.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "knead/distributions/any_distribution.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/mixture_of_gaussians.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

/// The "type" of a base distribution in a file.
template <class D, class T>
constexpr const char* base_type_name() {
  if constexpr (std::is_same_v<D, StandardNormal<T>>)
    return "StandardNormal";
  else if constexpr (std::is_same_v<D, DiagonalNormal<T>>)
    return "DiagonalNormal";
  else if constexpr (std::is_same_v<D, MixtureOfGaussians<T>>)
    return "MixtureOfGaussians";
  else
    static_assert(
        sizeof(D) == 0,
        "knead: the base must be StandardNormal, DiagonalNormal, MixtureOfGaussians or AnyDistribution");
}

template <class T, class D>
Json save_base(const D& base, TensorSink<T>& sink) {
  if constexpr (std::is_same_v<D, StandardNormal<T>>) {
    return Json{{"type", "StandardNormal"}, {"dim", base.dim()}};
  } else if constexpr (std::is_same_v<D, DiagonalNormal<T>>) {
    const std::span<const T> all = base.parameters();  // [μ (D)][s (D)]
    sink.add("base.mean", all.subspan(0, std::size_t(base.dim())));
    sink.add("base.log_scale", all.subspan(std::size_t(base.dim())));
    return Json{{"type", "DiagonalNormal"}, {"dim", base.dim()}};
  } else if constexpr (std::is_same_v<D, MixtureOfGaussians<T>>) {
    // [ℓ (K)][μ (D×K column-major)][s (D×K)]: μ and s are K×D row-major, row k for component k
    const auto k = std::size_t(base.components()), d = std::size_t(base.dim());
    const std::span<const T> all = base.parameters();
    sink.add("base.logits", all.subspan(0, k));
    sink.writer.add("base.means", all.subspan(k, k * d), {k, d});
    sink.writer.add("base.log_scales", all.subspan(k + k * d, k * d), {k, d});
    return Json{{"type", "MixtureOfGaussians"}, {"dim", base.dim()}, {"components", base.components()}};
  } else if constexpr (std::is_same_v<D, AnyDistribution<T>>) {
    if (const auto* s = base.template target<StandardNormal<T>>()) return save_base<T>(*s, sink);
    if (const auto* d = base.template target<DiagonalNormal<T>>()) return save_base<T>(*d, sink);
    if (const auto* m = base.template target<MixtureOfGaussians<T>>()) return save_base<T>(*m, sink);
    knead::detail::fail(
        "save", "the base distribution is not a StandardNormal, a DiagonalNormal or a MixtureOfGaussians");
  } else {
    return Json{{"type", base_type_name<D, T>()}};  // fails to compile: not a base knead can save
  }
}

template <class T, class D>
void load_base(D& base, TensorSource<T>& source) {
  if constexpr (std::is_same_v<D, DiagonalNormal<T>>) {
    const auto d = std::size_t(base.dim());
    source.take_into("base.mean", base.parameters().subspan(0, d));
    source.take_into("base.log_scale", base.parameters().subspan(d, d));
  } else if constexpr (std::is_same_v<D, MixtureOfGaussians<T>>) {
    const auto k = std::size_t(base.components()), d = std::size_t(base.dim());
    const auto take = [&](const char* name, const Shape& shape, std::size_t at) {
      const std::vector<T> v = source.take(name, shape);
      std::ranges::copy(v, base.parameters().begin() + std::ptrdiff_t(at));
    };
    take("base.logits", {k}, 0);
    take("base.means", {k, d}, k);
    take("base.log_scales", {k, d}, k + k * d);
  } else if constexpr (std::is_same_v<D, AnyDistribution<T>>) {
    if (auto* p = base.template target<DiagonalNormal<T>>()) load_base<T>(*p, source);
    if (auto* p = base.template target<MixtureOfGaussians<T>>()) load_base<T>(*p, source);
  }
}

template <class D, class T>
D build_base(const Json& node, Index dim, TensorSource<T>& source) {
  const NodeReader r(node, "base");
  const std::string type = r.type();
  const bool standard = type == "StandardNormal", diagonal = type == "DiagonalNormal",
             mixture = type == "MixtureOfGaussians";
  if (!standard && !diagonal && !mixture)
    bad("base", "unknown base distribution ", io::detail::describe(type),
        " (StandardNormal, DiagonalNormal or MixtureOfGaussians)");
  if (mixture)
    r.only({"type", "dim", "components"});
  else
    r.only({"type", "dim"});
  if (r.integer("dim", 1, std::numeric_limits<Index>::max()) != dim)
    bad("base", "base has dim ", show(r.field("dim")), " but the flow has dim ", dim);
  const auto make_standard = [&] { return StandardNormal<T>(dim); };
  const auto make_diagonal = [&] {
    source.require("base.mean", {std::uint64_t(dim)});
    source.require("base.log_scale", {std::uint64_t(dim)});
    DiagonalNormal<T> d(dim);
    load_base<T>(d, source);
    return d;
  };
  const auto make_mixture = [&] {
    // the tensors must have the shapes "components" implies before anything of that size is made
    const Index k = r.integer("components", 1, std::numeric_limits<std::int32_t>::max());
    source.require("base.logits", {std::uint64_t(k)});
    source.require("base.means", {std::uint64_t(k), std::uint64_t(dim)});
    source.require("base.log_scales", {std::uint64_t(k), std::uint64_t(dim)});
    MixtureOfGaussians<T> m(dim, k);
    load_base<T>(m, source);
    return m;
  };
  if constexpr (std::is_same_v<D, AnyDistribution<T>>) {
    return standard ? D(make_standard()) : diagonal ? D(make_diagonal()) : D(make_mixture());
  } else {
    const std::string wanted = base_type_name<D, T>();
    if (type != wanted)
      bad("base", "the file's base is a ", type, " but the requested flow type has a ", wanted);
    if constexpr (std::is_same_v<D, StandardNormal<T>>)
      return make_standard();
    else if constexpr (std::is_same_v<D, DiagonalNormal<T>>)
      return make_diagonal();
    else
      return make_mixture();
  }
}

}  // namespace knead::io::flow_detail
