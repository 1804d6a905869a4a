#pragma once
/// @file
/// The file format of LuLinear (docs/format.md): a node {"type", "dim", "permutation"} (P: x_i takes
/// row p[i] of L A u) and the tensors PREFIX.log_diagonal [D] (s), PREFIX.lower [D(D−1)/2] (L below
/// the diagonal, column by column), PREFIX.upper [D(D−1)/2] (U above the diagonal, column by column)
/// and PREFIX.shift [D] (b).

#include "knead/bijectors/lu_linear.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
struct Codec<LuLinear<T>> {
  using X = LuLinear<T>;
  static constexpr std::string_view type_name = X::name();
  static Json config(const X& x) {
    return Json{{"type", type_name}, {"dim", x.dim()}, {"permutation", x.permutation()}};
  }
  // parameters: [s (D)][L below the diagonal (D(D−1)/2)][U above the diagonal (D(D−1)/2)][b (D)]
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    const auto d = std::size_t(x.dim());
    const std::size_t off_diagonal = d * (d - 1) / 2;
    const std::span<const T> all = x.parameters();
    sink.add(p + ".log_diagonal", all.subspan(0, d));
    sink.add(p + ".lower", all.subspan(d, off_diagonal));
    sink.add(p + ".upper", all.subspan(d + off_diagonal, off_diagonal));
    sink.add(p + ".shift", all.subspan(d + 2 * off_diagonal, d));
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    const auto d = std::size_t(x.dim());
    const std::size_t off_diagonal = d * (d - 1) / 2;
    std::span<T> all = x.parameters();
    source.take_into(p + ".log_diagonal", all.subspan(0, d));
    source.take_into(p + ".lower", all.subspan(d, off_diagonal));
    source.take_into(p + ".upper", all.subspan(d + off_diagonal, off_diagonal));
    source.take_into(p + ".shift", all.subspan(d + 2 * off_diagonal, d));
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim", "permutation"});
    const auto d = std::uint64_t(dim);
    // The off-diagonal tensors have D(D−1)/2 entries each, so D is bounded by the file before
    // anything is sized by D².
    source.require(r.where() + ".log_diagonal", {d});
    if (d > (std::uint64_t{1} << 32)) bad(r.where(), "dim ", d, " is too large for a LuLinear");
    source.require(r.where() + ".lower", {d * (d - 1) / 2});
    source.require(r.where() + ".upper", {d * (d - 1) / 2});
    source.require(r.where() + ".shift", {d});
    // the constructor checks that the entries in [0, D) form a permutation
    std::vector<Index> permutation = r.integers("permutation", std::size_t(dim), 0, dim - 1);
    if (permutation.size() != std::size_t(dim))
      bad(r.where(), "field 'permutation' has ", permutation.size(), " entries, expected dim = ", dim);
    X x(std::move(permutation));
    load(x, r.where(), source);
    return x;
  }
};

}  // namespace knead::io::flow_detail
