#pragma once
/// @file
/// The file format of Maf (docs/format.md): a node with "hidden", "order", "guard" and, for a
/// conditional Maf only, "context_dim"; MADE's network as PREFIX.made.layers.L.weight [out, in] /
/// .bias [out], and its context weight as PREFIX.made.context_weight [first layer's units, C].
/// An IAF is an Invert of a Maf.

#include "knead/bijectors/maf.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
struct Codec<Maf<T>> {
  using X = Maf<T>;
  static constexpr std::string_view type_name = "Maf";
  static Json config(const X& x) {
    Json node{{"type", type_name},
              {"dim", x.dim()},
              {"hidden", hidden_of(x.made().mlp().sizes())},
              {"order", x.made().order()},
              {"guard", guard_json(x.guard())}};
    if (x.context_dim() > 0) node["context_dim"] = x.context_dim();  // unconditional files are unchanged
    return node;
  }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    save_mlp(x.made().mlp(), p + ".made", sink);
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    load_mlp(x.made().mlp(), p + ".made", source);
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim", "hidden", "order", "guard", "context_dim"});
    MafOptions<T> options;
    // Every size is checked against a tensor in the file before MADE is built (masks are sized by them).
    options.hidden = r.integers("hidden", 1024, 1, std::numeric_limits<std::int32_t>::max());
    std::vector<Index> sizes{dim};
    sizes.insert(sizes.end(), options.hidden.begin(), options.hidden.end());
    sizes.push_back(2 * dim);
    if (r.has("context_dim"))
      options.context_dim = r.integer("context_dim", 1, std::numeric_limits<std::int32_t>::max());
    require_mlp(source, r.where() + ".made", sizes, options.context_dim);
    options.order = InputOrder::permutation(r.integers("order", std::size_t(dim), 0, dim - 1));
    options.guard = guard_from<T>(r);
    X x(dim, options);
    load(x, r.where(), source);
    return x;
  }
};

}  // namespace knead::io::flow_detail
