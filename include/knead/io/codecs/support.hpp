#pragma once
/// @file
/// What every bijector codec (include/knead/io/codecs/*.hpp) is built from: reading an architecture
/// node (NodeReader), requiring and taking tensors (TensorSource), writing them (TensorSink), and
/// the codecs of the options and networks several bijectors share (log-scale guards, Mlps).
///
/// Reading treats the node as hostile: every field is checked for type and range, and every tensor
/// for presence, shape, dtype and finiteness, *before* the bijector is constructed, so each
/// allocation is bounded by data actually present in the file.
///
/// A codec is a specialisation of Codec<X> with these members (X a bijector type, T its scalar):
/// - `static constexpr std::string_view type_name`: the node's "type" in a file, the only place it is
///   spelt (save writes it, load matches it);
/// - `static Json config(const X&)`: the node without tensors;
/// - `static void save(const X&, const std::string& prefix, TensorSink<T>&)`: its tensors;
/// - `static void load(X&, const std::string& prefix, TensorSource<T>&)`: sets an existing x's state;
/// - `static X make(const NodeReader&, Index dim, TensorSource<T>&)`: checks a node and its tensors
///   and builds an X;
/// - optionally `save_buffers` / `load_buffers` (state that is not a parameter, kept by training
///   checkpoints) and `set_mode(X&, const Json& node)` (a mode such as BatchNorm's, which is state,
///   not architecture).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "knead/io/safetensors.hpp"
#include "knead/nn/log_scale_guard.hpp"
#include "knead/nn/mlp.hpp"

namespace knead::io::flow_detail {

using Json = nlohmann::ordered_json;
using Shape = std::vector<std::uint64_t>;

template <class... Parts>
[[noreturn]] void bad(const std::string& where, const Parts&... parts) {
  knead::detail::fail<FormatError>("load", where, ": ", parts...);
}

inline std::string show(const Json& value) {
  return io::detail::printable(value.dump(-1, ' ', true, Json::error_handler_t::replace), 80);
}
inline std::string show(const Shape& shape) { return nlohmann::json(shape).dump(); }

/// Reads the fields of one architecture node, naming the node (its tensor prefix) in every error.
class NodeReader {
 public:
  NodeReader(const Json& node, std::string where) : node_(node), where_(std::move(where)) {
    if (!node_.is_object()) bad(where_, "architecture node must be a JSON object, got ", show(node_));
  }
  const std::string& where() const { return where_; }
  std::string type() const { return string("type"); }

  /// Refuses fields other than `allowed` (a misspelt option must not be silently ignored).
  void only(std::initializer_list<std::string_view> allowed) const {
    for (const auto& [key, value] : node_.items()) {
      bool known = false;
      for (const auto a : allowed) known = known || key == a;
      if (!known) bad(where_, "unknown field ", io::detail::describe(key), " in a ", type(), " node");
    }
  }
  [[nodiscard]] bool has(std::string_view key) const { return node_.find(key) != node_.end(); }
  const Json& field(std::string_view key) const {
    const auto it = node_.find(key);
    if (it == node_.end()) bad(where_, "the node has no field '", key, "'");
    return *it;
  }
  std::string string(std::string_view key) const {
    const Json& v = field(key);
    if (!v.is_string()) bad(where_, "field '", key, "' must be a string, got ", show(v));
    return v.get<std::string>();
  }
  bool boolean(std::string_view key) const {
    const Json& v = field(key);
    if (!v.is_boolean()) bad(where_, "field '", key, "' must be true or false, got ", show(v));
    return v.get<bool>();
  }
  /// An integer in [lo, hi].
  Index integer(std::string_view key, Index lo, Index hi) const {
    return integer_value(field(key), key, lo, hi);
  }
  Index integer_value(const Json& v, std::string_view what, Index lo, Index hi) const {
    if (!v.is_number_integer()) bad(where_, "'", what, "' must be an integer, got ", show(v));
    // a non-negative integer read from a file is stored unsigned: it is compared with both bounds too
    const bool outside = v.is_number_unsigned() ? (lo > 0 && v.get<std::uint64_t>() < std::uint64_t(lo)) ||
                                                      v.get<std::uint64_t>() > std::uint64_t(hi)
                                                : (v.get<std::int64_t>() < lo || v.get<std::int64_t>() > hi);
    if (outside) bad(where_, "'", what, "' is ", show(v), ", outside [", lo, ", ", hi, "]");
    return Index(v.get<std::int64_t>());
  }
  /// A list of integers in [lo, hi], at most max_size of them.
  std::vector<Index> integers(std::string_view key, std::size_t max_size, Index lo, Index hi) const {
    const Json& v = field(key);
    if (!v.is_array()) bad(where_, "field '", key, "' must be a list of integers, got ", show(v));
    if (v.size() > max_size)
      bad(where_, "field '", key, "' has ", v.size(), " entries, at most ", max_size, " allowed");
    std::vector<Index> out;
    for (const Json& e : v) out.push_back(integer_value(e, key, lo, hi));
    return out;
  }
  /// A finite number representable in T.
  template <class T>
  T number(std::string_view key) const {
    const Json& v = field(key);
    if (!v.is_number()) bad(where_, "field '", key, "' must be a number, got ", show(v));
    const double d = v.get<double>();
    if (!std::isfinite(d) || std::abs(d) > double(std::numeric_limits<T>::max()))
      bad(where_, "field '", key, "' is ", show(v), ", not a finite value of the flow's scalar type");
    return static_cast<T>(d);
  }
  const Json& node() const { return node_; }

 private:
  const Json& node_;
  std::string where_;
};

/// The tensors of a file as the builders see them: each is first required (presence, shape, dtype:
/// no data is read), then taken (read, converted to T, checked finite). Remembers which were used.
template <class T>
class TensorSource {
 public:
  TensorSource(const SafetensorsFile& file, Dtype stored) : file_(file), stored_(stored) {}

  void require(const std::string& name, const Shape& shape) const {
    if (!file_.contains(name))
      bad(io::detail::describe(name), "missing tensor (the architecture needs one of shape ", show(shape),
          ")");
    const TensorInfo& t = file_.tensor(name);
    if (t.shape != shape)
      bad(io::detail::describe(name), "tensor has shape ", show(t.shape), ", the architecture needs ",
          show(shape));
    if (t.dtype != stored_)
      bad(io::detail::describe(name), "tensor has dtype ", dtype_name(t.dtype),
          ", the file's scalar type is ", dtype_name(stored_));
  }
  std::vector<T> take(const std::string& name, const Shape& shape) {
    require(name, shape);
    if (const auto bad_value = file_.find_non_finite(name))
      bad(io::detail::describe(name), "tensor has a non-finite value ", bad_value->value, " at index ",
          bad_value->index);
    used_.insert(name);
    return file_.read<T>(name, Narrowing::allow);  // the caller decided on conversions up front
  }
  /// Copies a tensor of n values into dst.
  void take_into(const std::string& name, std::span<T> dst) {
    const std::vector<T> v = take(name, {dst.size()});
    std::copy(v.begin(), v.end(), dst.begin());
  }
  /// Every tensor of the file must belong to the architecture.
  void check_all_used() const {
    for (const TensorInfo& t : file_.tensors())
      if (!used_.contains(t.name))
        bad(io::detail::describe(t.name), "tensor is not part of the flow's architecture");
  }

 private:
  const SafetensorsFile& file_;
  Dtype stored_;
  std::set<std::string, std::less<>> used_;
};

/// Where a bijector's tensors go when saving.
template <class T>
struct TensorSink {
  SafetensorsWriter& writer;
  void add(const std::string& name, std::span<const T> values) { writer.add(name, values, {values.size()}); }
};

// ---- option codecs ----------------------------------------------------------------------------------

template <class T>
Json guard_json(const LogScaleGuard<T>& g) {
  const char* kind = g.kind == LogScaleGuardKind::none    ? "none"
                     : g.kind == LogScaleGuardKind::clamp ? "clamp"
                                                          : "soft_clamp";
  return Json{{"kind", kind}, {"bound", double(g.bound)}};
}

template <class T>
LogScaleGuard<T> guard_from(const NodeReader& r) {
  const NodeReader g(r.field("guard"), r.where() + ".guard");
  g.only({"kind", "bound"});
  LogScaleGuard<T> out;
  const std::string kind = g.string("kind");
  if (kind == "none")
    out.kind = LogScaleGuardKind::none;
  else if (kind == "clamp")
    out.kind = LogScaleGuardKind::clamp;
  else if (kind == "soft_clamp")
    out.kind = LogScaleGuardKind::soft_clamp;
  else
    bad(g.where(), "unknown log-scale guard kind ", io::detail::describe(kind),
        " (none, clamp or soft_clamp)");
  out.bound = g.number<T>("bound");
  if (out.kind != LogScaleGuardKind::none && !(out.bound > T(0)))
    bad(g.where(), "bound must be positive, got ", out.bound);
  return out;
}

/// The hidden sizes of an Mlp: its sizes without the first and last.
inline std::vector<Index> hidden_of(const std::vector<Index>& sizes) {
  return std::vector<Index>(sizes.begin() + 1, sizes.end() - 1);
}

/// The shapes an Mlp of these layer sizes stores, row-major like PyTorch's nn.Linear:
/// PREFIX.layers.L.weight [out, in] and PREFIX.layers.L.bias [out]; with a context of C rows also
/// PREFIX.context_weight [out of layer 0, C].
inline void require_mlp(const auto& source, const std::string& prefix, const std::vector<Index>& sizes,
                        Index context_dim = 0) {
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const std::string at = prefix + ".layers." + std::to_string(l);
    source.require(at + ".weight", {std::uint64_t(sizes[l + 1]), std::uint64_t(sizes[l])});
    source.require(at + ".bias", {std::uint64_t(sizes[l + 1])});
  }
  if (context_dim > 0)
    source.require(prefix + ".context_weight", {std::uint64_t(sizes[1]), std::uint64_t(context_dim)});
}

template <class T>
void save_mlp(const Mlp<T>& net, const std::string& prefix, TensorSink<T>& sink) {
  for (Index l = 0; l < net.layers(); ++l) {
    const std::string at = prefix + ".layers." + std::to_string(l);
    sink.writer.add_matrix(at + ".weight", net.weight(l));
    sink.writer.add_vector(at + ".bias", net.bias(l));
  }
  if (net.context_dim() > 0) sink.writer.add_matrix(prefix + ".context_weight", net.context_weight());
}

template <class T>
void load_mlp(Mlp<T>& net, const std::string& prefix, TensorSource<T>& source) {
  require_mlp(source, prefix, net.sizes(), net.context_dim());
  for (Index l = 0; l < net.layers(); ++l) {
    const std::string at = prefix + ".layers." + std::to_string(l);
    const std::vector<T> w =
        source.take(at + ".weight", {std::uint64_t(net.out(l)), std::uint64_t(net.in(l))});
    net.weight(l) = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        w.data(), net.out(l), net.in(l));
    const std::vector<T> b = source.take(at + ".bias", {std::uint64_t(net.out(l))});
    net.bias(l) = Eigen::Map<const Vector<T>>(b.data(), net.out(l));
  }
  if (net.context_dim() > 0) {
    const std::vector<T> v = source.take(prefix + ".context_weight",
                                         {std::uint64_t(net.out(0)), std::uint64_t(net.context_dim())});
    net.context_weight() =
        Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
            v.data(), net.out(0), net.context_dim());
  }
}

/// The codec of bijector type X; each lives in its own header under include/knead/io/codecs/.
template <class X>
struct Codec;

}  // namespace knead::io::flow_detail
