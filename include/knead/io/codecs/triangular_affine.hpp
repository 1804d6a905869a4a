#pragma once
/// @file
/// The file format of TriangularAffine (docs/format.md): a node {"type", "dim"} and the tensors
/// PREFIX.log_diagonal [D], PREFIX.lower [D(D−1)/2] (below the diagonal, column by column), PREFIX.shift [D].

#include "knead/bijectors/triangular_affine.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
struct Codec<TriangularAffine<T>> {
  using X = TriangularAffine<T>;
  static constexpr std::string_view type_name = "TriangularAffine";
  static Json config(const X& x) { return Json{{"type", type_name}, {"dim", x.dim()}}; }
  // parameters: [s (D)][below the diagonal, column by column (D(D−1)/2)][b (D)]
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    const auto d = std::size_t(x.dim());
    const std::span<const T> all = x.parameters();
    sink.add(p + ".log_diagonal", all.subspan(0, d));
    sink.add(p + ".lower", all.subspan(d, d * (d - 1) / 2));
    sink.add(p + ".shift", all.subspan(d + d * (d - 1) / 2, d));
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    const auto d = std::size_t(x.dim());
    std::span<T> all = x.parameters();
    source.take_into(p + ".log_diagonal", all.subspan(0, d));
    source.take_into(p + ".lower", all.subspan(d, d * (d - 1) / 2));
    source.take_into(p + ".shift", all.subspan(d + d * (d - 1) / 2, d));
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim"});
    const auto d = std::uint64_t(dim);
    // The "lower" tensor has D(D−1)/2 entries, so D is bounded by the file before anything is sized by D².
    source.require(r.where() + ".log_diagonal", {d});
    if (d > (std::uint64_t{1} << 32)) bad(r.where(), "dim ", d, " is too large for a TriangularAffine");
    source.require(r.where() + ".lower", {d * (d - 1) / 2});
    source.require(r.where() + ".shift", {d});
    X x(dim);
    load(x, r.where(), source);
    return x;
  }
};

}  // namespace knead::io::flow_detail
