#pragma once
/// @file
/// The file formats of AffineCoupling and AdditiveCoupling (docs/format.md): a node with "mask",
/// "hidden", (affine) "guard" and, for a conditional coupling only, "context_dim"; the conditioner
/// as PREFIX.conditioner.layers.L.weight / .bias, and its context weight as
/// PREFIX.conditioner.context_weight [first layer's units, C].

#include <type_traits>

#include "knead/bijectors/coupling.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T, class Transformer>
struct Codec<Coupling<T, Transformer>> {
  using X = Coupling<T, Transformer>;
  static constexpr bool HasScale = std::is_same_v<Transformer, AffineTransformer<T>>;
  static constexpr std::string_view type_name = HasScale ? "AffineCoupling" : "AdditiveCoupling";
  static Json config(const X& x) {
    Json node{{"type", type_name},
              {"dim", x.dim()},
              {"mask", x.partition().mask()},
              {"hidden", hidden_of(x.conditioner().sizes())}};
    if constexpr (HasScale) node["guard"] = guard_json(x.guard());
    if (x.context_dim() > 0) node["context_dim"] = x.context_dim();  // unconditional files are unchanged
    return node;
  }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    save_mlp(x.conditioner(), p + ".conditioner", sink);
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    load_mlp(x.conditioner(), p + ".conditioner", source);
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    if constexpr (HasScale)
      r.only({"type", "dim", "mask", "hidden", "guard", "context_dim"});
    else
      r.only({"type", "dim", "mask", "hidden", "context_dim"});
    const std::vector<Index> mask = r.integers("mask", std::size_t(dim), 0, 1);
    if (Index(mask.size()) != dim)
      bad(r.where(), "mask has ", mask.size(), " entries, the flow has dim ", dim);
    Index ones = 0;
    for (const Index m : mask) ones += m;
    CouplingOptions<T> options;
    options.hidden = r.integers("hidden", 1024, 1, std::numeric_limits<std::int32_t>::max());
    std::vector<Index> sizes{ones};
    sizes.insert(sizes.end(), options.hidden.begin(), options.hidden.end());
    sizes.push_back((dim - ones) * (HasScale ? 2 : 1));
    if (r.has("context_dim"))
      options.context_dim = r.integer("context_dim", 1, std::numeric_limits<std::int32_t>::max());
    if (ones > 0 && ones < dim)  // else the constructor refuses
      require_mlp(source, r.where() + ".conditioner", sizes, options.context_dim);
    if constexpr (HasScale) options.guard = guard_from<T>(r);
    X x(std::vector<int>(mask.begin(), mask.end()), options);
    load(x, r.where(), source);
    return x;
  }
};

}  // namespace knead::io::flow_detail
