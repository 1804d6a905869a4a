#pragma once
/// @file
/// The file format of Affine, Scale and Shift (docs/format.md): a node {"type", "dim"} and the
/// tensors PREFIX.log_scale [D] (Affine, Scale) and PREFIX.shift [D] (Affine, Shift).

#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T, bool HasScale, bool HasShift>
struct Codec<ElementwiseAffine<T, HasScale, HasShift>> {
  using X = ElementwiseAffine<T, HasScale, HasShift>;
  static constexpr std::string_view type_name = HasScale && HasShift ? "Affine"
                                                : HasScale           ? "Scale"
                                                                     : "Shift";
  static Json config(const X& x) { return Json{{"type", type_name}, {"dim", x.dim()}}; }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    const Vector<T> s = x.log_scale(), t = x.shift();
    if constexpr (HasScale) sink.add(p + ".log_scale", std::span<const T>(s.data(), std::size_t(s.size())));
    if constexpr (HasShift) sink.add(p + ".shift", std::span<const T>(t.data(), std::size_t(t.size())));
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    const auto d = std::size_t(x.dim());
    std::span<T> params = x.parameters();  // [log_scale (D)][shift (D)], as present
    if constexpr (HasScale) source.take_into(p + ".log_scale", params.subspan(0, d));
    if constexpr (HasShift) source.take_into(p + ".shift", params.subspan(HasScale ? d : 0, d));
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim"});
    if constexpr (HasScale) source.require(r.where() + ".log_scale", {std::uint64_t(dim)});
    if constexpr (HasShift) source.require(r.where() + ".shift", {std::uint64_t(dim)});
    X x(dim);
    load(x, r.where(), source);
    return x;
  }
};

}  // namespace knead::io::flow_detail
