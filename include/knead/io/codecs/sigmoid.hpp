#pragma once
/// @file
/// The file format of Sigmoid (docs/format.md): a node with its "intervals", one entry per
/// dimension, [low, high] or null for a dimension left unchanged ((−∞, ∞), which JSON cannot
/// spell); no tensors.

#include <limits>

#include "knead/bijectors/sigmoid.hpp"
#include "knead/io/codecs/support.hpp"

namespace knead::io::flow_detail {

template <class T>
struct Codec<Sigmoid<T>> {
  using X = Sigmoid<T>;
  static constexpr std::string_view type_name = "Sigmoid";
  static Json config(const X& x) {
    Json intervals = Json::array();
    for (Index i = 0; i < x.dim(); ++i)
      intervals.push_back(x.bounded(i) ? Json::array({double(x.low()(i)), double(x.high()(i))}) : Json());
    return Json{{"type", type_name}, {"dim", x.dim()}, {"intervals", intervals}};
  }
  static void save(const X&, const std::string&, TensorSink<T>&) {}
  static void load(X&, const std::string&, TensorSource<T>&) {}
  static X make(const NodeReader& r, Index dim, TensorSource<T>&) {
    r.only({"type", "dim", "intervals"});
    const Json& intervals = r.field("intervals");
    // the list is in the file, so its length bounds dim before anything is sized by it
    if (!intervals.is_array() || intervals.size() != std::size_t(dim))
      bad(r.where(), "'intervals' must be a list of ", dim, " entries ([low, high] or null), got ",
          show(intervals));
    Vector<T> low(dim), high(dim);
    for (Index i = 0; i < dim; ++i) {
      const Json& entry = intervals[std::size_t(i)];
      if (entry.is_null()) {
        low(i) = -std::numeric_limits<T>::infinity();
        high(i) = std::numeric_limits<T>::infinity();
        continue;
      }
      if (!entry.is_array() || entry.size() != 2 || !entry[0].is_number() || !entry[1].is_number())
        bad(r.where(), "interval ", i, " must be [low, high] (two numbers) or null, got ", show(entry));
      for (std::size_t k = 0; k < 2; ++k) {
        const double value = entry[k].get<double>();
        if (!std::isfinite(value) || std::abs(value) > double(std::numeric_limits<T>::max()))
          bad(r.where(), "interval ", i, " has the bound ", show(entry[k]),
              ", not a finite value of the flow's scalar type");
      }
      low(i) = static_cast<T>(entry[0].get<double>());
      high(i) = static_cast<T>(entry[1].get<double>());
    }
    return X(low, high);  // the constructor checks low < high
  }
};

}  // namespace knead::io::flow_detail
