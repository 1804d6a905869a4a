#pragma once
/// @file
/// The file format of BatchNorm (docs/format.md): a node with "momentum", "epsilon" and
/// "training" (its mode), the parameters PREFIX.log_scale [D] (γ) and PREFIX.shift [D] (β) and the
/// buffers PREFIX.running_mean [D] and PREFIX.running_variance [D].

#include "knead/bijectors/batch_norm.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
struct Codec<BatchNorm<T>> {
  using X = BatchNorm<T>;
  static constexpr std::string_view type_name = "BatchNorm";
  static Json config(const X& x) {
    return Json{{"type", type_name},
                {"dim", x.dim()},
                {"momentum", double(x.momentum())},
                {"epsilon", double(x.epsilon())},
                {"training", x.training()}};
  }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    const auto d = std::size_t(x.dim());
    const std::span<const T> all = x.parameters();  // [γ (D)][β (D)]
    sink.add(p + ".log_scale", all.subspan(0, d));
    sink.add(p + ".shift", all.subspan(d, d));
    save_buffers(x, p, sink);
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    const auto d = std::size_t(x.dim());
    source.take_into(p + ".log_scale", x.parameters().subspan(0, d));
    source.take_into(p + ".shift", x.parameters().subspan(d, d));
    load_buffers(x, p, source);
  }
  // The running statistics are state but not parameters: a training checkpoint stores only these.
  static void save_buffers(const X& x, const std::string& p, TensorSink<T>& sink) {
    sink.writer.add_vector(p + ".running_mean", x.running_mean());
    sink.writer.add_vector(p + ".running_variance", x.running_variance());
  }
  static void load_buffers(X& x, const std::string& p, TensorSource<T>& source) {
    const auto d = std::size_t(x.dim());
    const std::vector<T> mean = source.take(p + ".running_mean", {d});
    const std::vector<T> variance = source.take(p + ".running_variance", {d});
    x.set_running_mean(Eigen::Map<const Vector<T>>(mean.data(), Index(d)));
    x.set_running_variance(Eigen::Map<const Vector<T>>(variance.data(), Index(d)));
  }
  // The train/eval mode is state, not architecture: loading into an existing flow takes the file's.
  static void set_mode(X& x, const Json& node) { x.set_training(node["training"].template get<bool>()); }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim", "momentum", "epsilon", "training"});
    for (const char* name : {".log_scale", ".shift", ".running_mean", ".running_variance"})
      source.require(r.where() + name, {std::uint64_t(dim)});
    X x(dim, r.number<T>("momentum"), r.number<T>("epsilon"));
    x.set_training(r.boolean("training"));
    load(x, r.where(), source);
    return x;
  }
};

}  // namespace knead::io::flow_detail
