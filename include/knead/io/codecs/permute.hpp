#pragma once
/// @file
/// The file format of Permute (docs/format.md): a node with its "permutation" (x_i = u_{p[i]}), no
/// tensors.

#include "knead/bijectors/permute.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
struct Codec<Permute<T>> {
  using X = Permute<T>;
  static constexpr std::string_view type_name = "Permute";
  static Json config(const X& x) {
    return Json{{"type", type_name}, {"dim", x.dim()}, {"permutation", x.permutation()}};
  }
  static void save(const X&, const std::string&, TensorSink<T>&) {}
  static void load(X&, const std::string&, TensorSource<T>&) {}
  static X make(const NodeReader& r, Index dim, TensorSource<T>&) {
    r.only({"type", "dim", "permutation"});
    return X(r.integers("permutation", std::size_t(dim), 0, dim - 1));  // the constructor checks the rest
  }
};

}  // namespace knead::io::flow_detail
