#pragma once
/// @file
/// The file formats of PReLU (a node with "per_dimension", the tensor PREFIX.log_slope [D] or [1])
/// and LeakyReLU (a node with its fixed "log_slope", no tensors); docs/format.md.

#include "knead/bijectors/leaky_relu.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
struct Codec<PReLU<T>> {
  using X = PReLU<T>;
  static constexpr std::string_view type_name = "PReLU";
  static Json config(const X& x) {
    return Json{{"type", type_name}, {"dim", x.dim()}, {"per_dimension", x.per_dimension()}};
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

template <class T>
struct Codec<LeakyReLU<T>> {
  using X = LeakyReLU<T>;
  static constexpr std::string_view type_name = "LeakyReLU";
  static Json config(const X& x) {
    return Json{{"type", type_name}, {"dim", x.dim()}, {"log_slope", double(x.fixed_log_slope())}};
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

}  // namespace knead::io::flow_detail
