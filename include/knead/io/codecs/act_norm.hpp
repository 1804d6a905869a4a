#pragma once
/// @file
/// The file format of ActNorm (docs/format.md): a node {"type": "ActNorm", "dim", "initialized"}
/// and the tensors PREFIX.log_scale [D] and PREFIX.shift [D]. "initialized" is the map's state:
/// a loaded map that was initialised is not initialised again from the next batch.

#include "knead/bijectors/act_norm.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
struct Codec<ActNorm<T>> {
  using X = ActNorm<T>;
  static constexpr std::string_view type_name = X::layer_name;
  static Json config(const X& x) {
    return Json{{"type", type_name}, {"dim", x.dim()}, {"initialized", x.initialized()}};
  }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    const Vector<T> s = x.log_scale(), b = x.shift();
    sink.add(p + ".log_scale", std::span<const T>(s.data(), std::size_t(s.size())));
    sink.add(p + ".shift", std::span<const T>(b.data(), std::size_t(b.size())));
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    const auto d = std::size_t(x.dim());
    std::span<T> params = x.parameters();  // [log_scale (D)][shift (D)]
    source.take_into(p + ".log_scale", params.subspan(0, d));
    source.take_into(p + ".shift", params.subspan(d, d));
  }
  // Whether it was initialised is state, not architecture: loading into an existing flow takes the
  // file's.
  static void set_mode(X& x, const Json& node) {
    x.set_initialized(node["initialized"].template get<bool>());
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim", "initialized"});
    const bool initialized = r.boolean("initialized");
    source.require(r.where() + ".log_scale", {std::uint64_t(dim)});
    source.require(r.where() + ".shift", {std::uint64_t(dim)});
    X x(dim);
    load(x, r.where(), source);
    x.set_initialized(initialized);
    return x;
  }
};

}  // namespace knead::io::flow_detail
