#pragma once
/// @file
/// How each of knead's bijectors is written to and read from a flow file (see flow_io.hpp and
/// docs/format.md): its architecture node (a JSON object in the metadata) and its tensors.
///
/// Reading treats the node as hostile: every field is checked for type and range, and every tensor
/// for presence, shape, dtype and finiteness, *before* the bijector is constructed, so each
/// allocation is bounded by data actually present in the file.

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "knead/bijectors/batch_norm.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/leaky_relu.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/bijectors/triangular_affine.hpp"
#include "knead/io/safetensors.hpp"

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
    if (v.is_number_unsigned() ? v.get<std::uint64_t>() > std::uint64_t(hi)
                               : (v.get<std::int64_t>() < lo || v.get<std::int64_t>() > hi))
      bad(where_, "'", what, "' is ", show(v), ", outside [", lo, ", ", hi, "]");
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
/// PREFIX.layers.L.weight [out, in] and PREFIX.layers.L.bias [out].
inline void require_mlp(const auto& source, const std::string& prefix, const std::vector<Index>& sizes) {
  for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
    const std::string at = prefix + ".layers." + std::to_string(l);
    source.require(at + ".weight", {std::uint64_t(sizes[l + 1]), std::uint64_t(sizes[l])});
    source.require(at + ".bias", {std::uint64_t(sizes[l + 1])});
  }
}

template <class T>
void save_mlp(const Mlp<T>& net, const std::string& prefix, TensorSink<T>& sink) {
  for (Index l = 0; l < net.layers(); ++l) {
    const std::string at = prefix + ".layers." + std::to_string(l);
    sink.writer.add_matrix(at + ".weight", net.weight(l));
    sink.writer.add_vector(at + ".bias", net.bias(l));
  }
}

template <class T>
void load_mlp(Mlp<T>& net, const std::string& prefix, TensorSource<T>& source) {
  require_mlp(source, prefix, net.sizes());
  for (Index l = 0; l < net.layers(); ++l) {
    const std::string at = prefix + ".layers." + std::to_string(l);
    const std::vector<T> w =
        source.take(at + ".weight", {std::uint64_t(net.out(l)), std::uint64_t(net.in(l))});
    net.weight(l) = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
        w.data(), net.out(l), net.in(l));
    const std::vector<T> b = source.take(at + ".bias", {std::uint64_t(net.out(l))});
    net.bias(l) = Eigen::Map<const Vector<T>>(b.data(), net.out(l));
  }
}

/// The slope a whose log is exactly θ, so a rebuilt LeakyReLU stores θ bit for bit: exp(θ) is
/// within a few units in the last place of such an a (if θ came from a log, one exists).
template <class T>
T slope_with_log(T theta) {
  const T start = std::exp(theta);
  T up = start, down = start;
  for (int i = 0; i < 64; ++i) {
    if (std::log(up) == theta) return up;
    if (down > T(0) && std::log(down) == theta) return down;
    up = std::nextafter(up, std::numeric_limits<T>::infinity());
    down = std::nextafter(down, T(0));
  }
  return start;
}

// ---- per-bijector codecs ----------------------------------------------------------------------------
// Codec<X>: config(x) → the node without tensors; save(x, prefix, sink); load(x, prefix, source)
// sets an existing x's state; make(reader, dim, source) checks a node and its tensors and builds x.
// A bijector with state that is not a parameter also has save_buffers and load_buffers for it.

template <class X>
struct Codec;

template <class T, bool HasScale, bool HasShift>
struct Codec<ElementwiseAffine<T, HasScale, HasShift>> {
  using X = ElementwiseAffine<T, HasScale, HasShift>;
  static Json config(const X& x) { return Json{{"type", X::name()}, {"dim", x.dim()}}; }
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

template <class T>
struct Codec<TriangularAffine<T>> {
  using X = TriangularAffine<T>;
  static Json config(const X& x) { return Json{{"type", X::name()}, {"dim", x.dim()}}; }
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

template <class T>
struct Codec<PReLU<T>> {
  using X = PReLU<T>;
  static Json config(const X& x) {
    return Json{{"type", X::name()}, {"dim", x.dim()}, {"per_dimension", x.per_dimension()}};
  }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    sink.add(p + ".log_slope", x.parameters());  // θ = log a, per dimension or shared
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    source.take_into(p + ".log_slope", x.parameters());
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim", "per_dimension"});
    const bool per_dimension = r.boolean("per_dimension");
    source.require(r.where() + ".log_slope", {per_dimension ? std::uint64_t(dim) : 1u});
    X x(dim, T(0.5), per_dimension);
    load(x, r.where(), source);
    return x;
  }
};

template <class T>
struct Codec<LeakyReLU<T>> {
  using X = LeakyReLU<T>;
  static Json config(const X& x) {
    return Json{{"type", X::name()}, {"dim", x.dim()}, {"log_slope", double(x.fixed_log_slope())}};
  }
  static void save(const X&, const std::string&, TensorSink<T>&) {}
  static void load(X&, const std::string&, TensorSource<T>&) {}
  static X make(const NodeReader& r, Index dim, TensorSource<T>&) {
    r.only({"type", "dim", "log_slope"});
    const T theta = r.number<T>("log_slope");
    const T slope = std::exp(theta);
    if (!(slope > T(0)) || !std::isfinite(slope))
      bad(r.where(), "log_slope ", theta, " gives the slope ", slope, ", not positive and finite");
    return X(dim, slope_with_log(theta));
  }
};

template <class T>
struct Codec<Permute<T>> {
  using X = Permute<T>;
  static Json config(const X& x) {
    return Json{{"type", X::name()}, {"dim", x.dim()}, {"permutation", x.permutation()}};
  }
  static void save(const X&, const std::string&, TensorSink<T>&) {}
  static void load(X&, const std::string&, TensorSource<T>&) {}
  static X make(const NodeReader& r, Index dim, TensorSource<T>&) {
    r.only({"type", "dim", "permutation"});
    return X(r.integers("permutation", std::size_t(dim), 0, dim - 1));  // the constructor checks the rest
  }
};

template <class T>
struct Codec<BatchNorm<T>> {
  using X = BatchNorm<T>;
  static Json config(const X& x) {
    return Json{{"type", X::name()},
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

template <class T>
struct Codec<Maf<T>> {
  using X = Maf<T>;
  static Json config(const X& x) {
    return Json{{"type", X::name()},
                {"dim", x.dim()},
                {"hidden", hidden_of(x.made().mlp().sizes())},
                {"order", x.made().order()},
                {"guard", guard_json(x.guard())}};
  }
  static void save(const X& x, const std::string& p, TensorSink<T>& sink) {
    save_mlp(x.made().mlp(), p + ".made", sink);
  }
  static void load(X& x, const std::string& p, TensorSource<T>& source) {
    load_mlp(x.made().mlp(), p + ".made", source);
  }
  static X make(const NodeReader& r, Index dim, TensorSource<T>& source) {
    r.only({"type", "dim", "hidden", "order", "guard"});
    MafOptions<T> options;
    // Every size is checked against a tensor in the file before MADE is built (masks are sized by them).
    options.hidden = r.integers("hidden", 1024, 1, std::numeric_limits<std::int32_t>::max());
    std::vector<Index> sizes{dim};
    sizes.insert(sizes.end(), options.hidden.begin(), options.hidden.end());
    sizes.push_back(2 * dim);
    require_mlp(source, r.where() + ".made", sizes);
    options.order = InputOrder::permutation(r.integers("order", std::size_t(dim), 0, dim - 1));
    options.guard = guard_from<T>(r);
    X x(dim, options);
    load(x, r.where(), source);
    return x;
  }
};

template <class T, class Transformer>
struct Codec<Coupling<T, Transformer>> {
  using X = Coupling<T, Transformer>;
  static constexpr bool HasScale = std::is_same_v<Transformer, AffineTransformer<T>>;
  static Json config(const X& x) {
    Json node{{"type", X::name()},
              {"dim", x.dim()},
              {"mask", x.partition().mask()},
              {"hidden", hidden_of(x.conditioner().sizes())}};
    if constexpr (HasScale) node["guard"] = guard_json(x.guard());
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
      r.only({"type", "dim", "mask", "hidden", "guard"});
    else
      r.only({"type", "dim", "mask", "hidden"});
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
    if (ones > 0 && ones < dim)
      require_mlp(source, r.where() + ".conditioner", sizes);  // else the constructor refuses
    if constexpr (HasScale) options.guard = guard_from<T>(r);
    X x(std::vector<int>(mask.begin(), mask.end()), options);
    load(x, r.where(), source);
    return x;
  }
};

}  // namespace knead::io::flow_detail
