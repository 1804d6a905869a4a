#pragma once
/// @file
/// The file formats of RationalQuadraticCoupling and RationalQuadraticAutoregressive
/// (docs/format.md): a coupling node with "mask", "hidden" and "spline", its conditioner as
/// PREFIX.conditioner.layers.L.weight / .bias; an autoregressive node with "hidden", "order" and
/// "spline", its MADE as PREFIX.made.layers.L.weight / .bias. "spline" is {"bins", "bound",
/// "min_bin_width", "min_bin_height", "min_derivative"}; a spline that cannot be built is refused
/// with its node's place in the file. A conditional layer's node also has "context_dim" C and its
/// network's context weight PREFIX.conditioner.context_weight / PREFIX.made.context_weight
/// [first layer's units, C], as for AffineCoupling and Maf.

#include <limits>
#include <stdexcept>
#include <string_view>

#include "knead/bijectors/neural_spline.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
Json spline_json(const RationalQuadraticOptions<T>& o) {
  return Json{{"bins", o.bins},
              {"bound", double(o.bound)},
              {"min_bin_width", double(o.min_bin_width)},
              {"min_bin_height", double(o.min_bin_height)},
              {"min_derivative", double(o.min_derivative)}};
}

/// The "spline" field of node r, checked as the transformer checks its options.
template <class T>
RationalQuadraticOptions<T> spline_from(const NodeReader& r) {
  const NodeReader s(r.field("spline"), r.where() + ".spline");
  s.only({"bins", "bound", "min_bin_width", "min_bin_height", "min_derivative"});
  RationalQuadraticOptions<T> o;
  o.bins = s.integer("bins", 2, 4096);
  o.bound = s.number<T>("bound");
  o.min_bin_width = s.number<T>("min_bin_width");
  o.min_bin_height = s.number<T>("min_bin_height");
  o.min_derivative = s.number<T>("min_derivative");
  try {
    RationalQuadraticTransformer<T>(o).validate("spline");
  } catch (const std::invalid_argument& e) {
    bad(s.where(), std::string_view(e.what()).substr(std::string_view("spline: ").size()));
  }
  return o;
}

/// A conditional layer's "context_dim" (≥ 1), or 0 for a node without one.
inline Index context_dim_from(const NodeReader& r) {
  return r.has("context_dim") ? r.integer("context_dim", 1, std::numeric_limits<std::int32_t>::max()) : 0;
}

template <class T>
struct Codec<RationalQuadraticCoupling<T>> {
  using X = RationalQuadraticCoupling<T>;
  static constexpr std::string_view type_name = "RationalQuadraticCoupling";
  static Json config(const X& x) {
    Json node{{"type", type_name},
              {"dim", x.dim()},
              {"mask", x.partition().mask()},
              {"hidden", hidden_of(x.conditioner().sizes())},
              {"spline", spline_json(x.transformer().options())}};
    if (x.context_dim() > 0) node["context_dim"] = x.context_dim();  // only a conditional layer has it
    return node;
  }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    save_mlp(x.conditioner(), p + ".conditioner", sink);
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    load_mlp(x.conditioner(), p + ".conditioner", source);
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim", "mask", "hidden", "spline", "context_dim"});
    const std::vector<Index> mask = r.integers("mask", std::size_t(dim), 0, 1);
    if (Index(mask.size()) != dim)
      bad(r.where(), "mask has ", mask.size(), " entries, the flow has dim ", dim);
    Index ones = 0;
    for (const Index m : mask) ones += m;
    CouplingOptions<T> options;
    options.hidden = r.integers("hidden", 1024, 1, std::numeric_limits<std::int32_t>::max());
    options.spline = spline_from<T>(r);
    std::vector<Index> sizes{ones};
    sizes.insert(sizes.end(), options.hidden.begin(), options.hidden.end());
    sizes.push_back((dim - ones) * (3 * options.spline.bins - 1));
    options.context_dim = context_dim_from(r);
    if (ones > 0 && ones < dim)  // else the constructor refuses
      require_mlp(source, r.where() + ".conditioner", sizes, options.context_dim);
    X x(std::vector<int>(mask.begin(), mask.end()), options);
    load(x, r.where(), source);
    return x;
  }
};

template <class T>
struct Codec<RationalQuadraticAutoregressive<T>> {
  using X = RationalQuadraticAutoregressive<T>;
  static constexpr std::string_view type_name = "RationalQuadraticAutoregressive";
  static Json config(const X& x) {
    Json node{{"type", type_name},
              {"dim", x.dim()},
              {"hidden", hidden_of(x.made().mlp().sizes())},
              {"order", x.made().order()},
              {"spline", spline_json(x.transformer().options())}};
    if (x.context_dim() > 0) node["context_dim"] = x.context_dim();  // only a conditional layer has it
    return node;
  }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    save_mlp(x.made().mlp(), p + ".made", sink);
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    load_mlp(x.made().mlp(), p + ".made", source);
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim", "hidden", "order", "spline", "context_dim"});
    AutoregressiveOptions<T> options;
    // Every size is checked against a tensor in the file before MADE is built (masks are sized by them).
    options.hidden = r.integers("hidden", 1024, 1, std::numeric_limits<std::int32_t>::max());
    const RationalQuadraticOptions<T> spline = spline_from<T>(r);
    std::vector<Index> sizes{dim};
    sizes.insert(sizes.end(), options.hidden.begin(), options.hidden.end());
    sizes.push_back((3 * spline.bins - 1) * dim);
    options.context_dim = context_dim_from(r);
    require_mlp(source, r.where() + ".made", sizes, options.context_dim);
    options.order = InputOrder::permutation(r.integers("order", std::size_t(dim), 0, dim - 1));
    X x(dim, RationalQuadraticTransformer<T>(spline), options);
    load(x, r.where(), source);
    return x;
  }
};

}  // namespace knead::io::flow_detail
