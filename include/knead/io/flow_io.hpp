#pragma once
/// @file
/// Saving and loading whole flows in the safetensors format (docs/format.md has the schema).
///
/// - `save(flow, path)` writes the flow's tensors and, in the metadata, its full architecture
///   (bijector types and order, sizes, orders, masks, permutations, options, BatchNorm mode, the
///   base distribution, the format version and the scalar type). The write is atomic.
/// - `load<T>(path)` rebuilds it with nothing else, as a LoadedFlow<T> (a type-erased base and a
///   DynamicChain); `load_as<Flow>(path)` builds a TransformedDistribution<Base, DynamicChain<T>> or
///   <Base, AnyBijector<T>> with a concrete Base; `load_into(flow, path)` sets the state of an
///   existing flow of the same architecture (any composition of knead's bijectors, static Chain
///   included) and names the first difference if the architecture differs.
/// - `flow_state(flow)` and `set_flow_state(flow, state)` take and set only the state that is not a
///   parameter (BatchNorm running statistics and modes), for training checkpoints
///   (knead/train/checkpoint.hpp), which store the parameters themselves.
///
/// A loaded flow computes bit for bit what the saved one did. A file of another scalar type is
/// converted only with ScalarConversion::allow. A broken or hostile file gives knead::FormatError
/// (never a crash, a partly built flow or an allocation larger than the file justifies); a file
/// that cannot be read gives knead::FileError; a flow holding a bijector knead cannot describe
/// (a static Chain inside an AnyBijector, a user-defined bijector) gives std::invalid_argument.

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "knead/bijectors/any_bijector.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/iaf.hpp"
#include "knead/bijectors/invert.hpp"
#include "knead/distributions/any_distribution.hpp"
#include "knead/distributions/transformed_distribution.hpp"
#include "knead/io/base_codec.hpp"
#include "knead/io/flow_codec.hpp"

namespace knead {

/// The version of the flow schema this knead writes; files of a newer version are refused.
inline constexpr int flow_format_version = 1;

/// Whether a file of the other scalar type (float ↔ double) may be loaded, converting its values.
enum class ScalarConversion { forbid, allow };

/// What load<T> returns: any base distribution, and the bijector as a run-time chain.
template <class T>
using LoadedFlow = TransformedDistribution<AnyDistribution<T>, DynamicChain<T>>;

namespace io::flow_detail {

template <class List, class X>
struct Append;
template <class... Xs, class X>
struct Append<TypeList<Xs...>, X> {
  using type = TypeList<Xs..., X>;
};
/// The bijectors an AnyBijector may hold in a saved flow (each also as Invert<X>): the registered
/// ones (flow_codec.hpp) and DynamicChain.
template <class T>
using Savable = typename Append<RegisteredBijectors<T>, DynamicChain<T>>::type;

template <class B>
struct IsChain : std::false_type {};
template <class... Bs>
struct IsChain<Chain<Bs...>> : std::true_type {};
template <class B>
struct IsInvert : std::false_type {};
template <class B>
struct IsInvert<Invert<B>> : std::true_type {};
template <class B>
struct IsDynamicChain : std::false_type {};
template <class T>
struct IsDynamicChain<DynamicChain<T>> : std::true_type {};
template <class B>
struct IsAny : std::false_type {};
template <class T>
struct IsAny<AnyBijector<T>> : std::true_type {};

inline constexpr int max_depth = 32;      // nesting of chains and inversions
inline constexpr int max_nodes = 4096;    // bijectors in one flow
inline constexpr Index max_parts = 1024;  // parts of one chain
/// A flow whose dim no tensor of the file justifies (only parameter-free layers) is capped here.
inline constexpr std::uint64_t free_dim_limit = 65536;

/// Calls f on the concrete bijector inside `any` (X or Invert<X> for X in Savable); false if none.
template <class A, class F, class... Xs>
bool dispatch(A& any, F&& f, TypeList<Xs...>) {
  bool found = false;
  const auto one = [&](auto* p) {
    if (!found && p) {
      found = true;
      f(*p);
    }
  };
  ((one(any.template target<Xs>()), one(any.template target<Invert<Xs>>())), ...);
  return found;
}

/// Which tensors a walk over a flow writes or reads: all of them (a flow file), or only the state
/// that is not a parameter, the buffers (a training checkpoint, which stores the parameters apart).
/// A buffers walk also passes over bijectors knead cannot describe: they appear as a node of their
/// name and dim, without state.
enum class Tensors { all, buffers };

template <class B>
Json opaque_node(const B& b, std::string name) {
  return Json{{"type", std::move(name)}, {"dim", b.dim()}};
}

// ---- saving -------------------------------------------------------------------------------------

template <class T, Tensors What = Tensors::all, class B>
Json save_node(const B& b, const std::string& prefix, TensorSink<T>& sink) {
  if constexpr (IsChain<B>::value || IsDynamicChain<B>::value) {
    Json parts = Json::array();
    const auto add = [&](const auto& part) {
      parts.push_back(save_node<T, What>(part, prefix + "." + std::to_string(parts.size()), sink));
    };
    if constexpr (IsChain<B>::value)
      b.for_each_part(add);
    else
      for (Index i = 0; i < b.size(); ++i) add(b.part(i));
    return Json{{"type", chain_type}, {"dim", b.dim()}, {"parts", std::move(parts)}};
  } else if constexpr (IsInvert<B>::value) {
    return Json{{"type", invert_type},
                {"dim", b.dim()},
                {"inner", save_node<T, What>(b.inner(), prefix + ".inner", sink)}};
  } else if constexpr (IsAny<B>::value) {
    Json out;
    if (dispatch(
            b, [&](const auto& x) { out = save_node<T, What>(x, prefix, sink); }, Savable<T>{}))
      return out;
    if constexpr (What == Tensors::buffers) return opaque_node(b, b.name());
    knead::detail::fail("save", "bijector ", prefix, " is a ", b.name(),
                        ", which knead cannot save inside an AnyBijector (a static Chain there can be "
                        "a DynamicChain)");
  } else if constexpr (What == Tensors::buffers && !requires { Codec<B>::config(b); }) {
    return opaque_node(b, bijector_name<B>());
  } else {
    static_assert(
        requires { Codec<B>::config(b); }, "knead::save: this bijector type has no file format");
    Json node = Codec<B>::config(b);
    if constexpr (What == Tensors::all)
      Codec<B>::save(b, prefix, sink);
    else if constexpr (requires { Codec<B>::save_buffers(b, prefix, sink); })
      Codec<B>::save_buffers(b, prefix, sink);
    return node;
  }
}

// ---- loading into an existing flow ----------------------------------------------------------------

/// The first place where the flow's architecture (`ours`) and the file's differ, if any. A
/// BatchNorm's train/eval mode ("training") and whether an ActNorm was initialised
/// ("initialized") are state, not architecture: they are taken from the file.
inline std::optional<std::string> first_difference(const Json& ours, const Json& file,
                                                   const std::string& path) {
  if (ours.is_object() && file.is_object()) {
    for (const auto& [key, value] : ours.items()) {
      const auto it = file.find(key);
      if ((key == "training" || key == "initialized") && it != file.end() && it->is_boolean()) continue;
      if (it == file.end()) return path + "." + key + ": the flow has " + show(value) + ", the file has none";
      if (auto d = first_difference(value, *it, path + "." + key)) return d;
    }
    for (const auto& [key, value] : file.items())
      if (!ours.contains(key))
        return path + "." + io::detail::printable(key, 40) + ": the file has " + show(value) +
               ", the flow has none";
    return std::nullopt;
  }
  if (ours.is_array() && file.is_array()) {
    if (ours.size() != file.size())
      return path + ": the flow has " + std::to_string(ours.size()) + " entries, the file has " +
             std::to_string(file.size());
    for (std::size_t i = 0; i < ours.size(); ++i)
      if (auto d = first_difference(ours[i], file[i], path + "[" + std::to_string(i) + "]")) return d;
    return std::nullopt;
  }
  const bool same =
      (ours.is_number() && file.is_number()) ? ours.get<double>() == file.get<double>() : ours == file;
  if (same) return std::nullopt;
  return path + ": the flow has " + show(ours) + ", the file has " + show(file);
}

/// Sets the state of an existing bijector whose architecture equals `node` (checked before).
template <class T, Tensors What = Tensors::all, class B>
void load_node(B& b, const Json& node, const std::string& prefix, TensorSource<T>& source) {
  if constexpr (IsChain<B>::value || IsDynamicChain<B>::value) {
    std::size_t i = 0;
    const auto one = [&](auto& part) {
      load_node<T, What>(part, node["parts"][i], prefix + "." + std::to_string(i), source);
      ++i;
    };
    if constexpr (IsChain<B>::value)
      b.for_each_part(one);
    else
      for (Index k = 0; k < b.size(); ++k) one(b.part(k));
  } else if constexpr (IsInvert<B>::value) {
    load_node<T, What>(b.inner(), node["inner"], prefix + ".inner", source);
  } else if constexpr (IsAny<B>::value) {
    dispatch(
        b, [&](auto& x) { load_node<T, What>(x, node, prefix, source); }, Savable<T>{});
  } else if constexpr (requires { Codec<B>::config(b); }) {  // else an opaque node of a buffers walk
    if constexpr (What == Tensors::all)
      Codec<B>::load(b, prefix, source);
    else if constexpr (requires { Codec<B>::load_buffers(b, prefix, source); })
      Codec<B>::load_buffers(b, prefix, source);
    if constexpr (requires { Codec<B>::set_mode(b, node); }) Codec<B>::set_mode(b, node);
  }
}

// ---- building from a file -------------------------------------------------------------------------

template <class T>
class Builder {
 public:
  Builder(TensorSource<T>& source, Index dim) : source_(source), dim_(dim) {}

  AnyBijector<T> any(const Json& node, const std::string& prefix, int depth) {
    try {
      const NodeReader r(node, prefix);
      check_node(r, depth);
      if (r.type() != invert_type)
        return concrete(r, depth, [](auto x) { return AnyBijector<T>(std::move(x)); });
      r.only({"type", "dim", "inner"});
      const NodeReader inner(r.field("inner"), prefix + ".inner");
      check_node(inner, depth + 1);
      if (inner.type() == invert_type)
        bad(inner.where(),
            "an Invert of an Invert is not supported (it is the identity of its inner bijector)");
      return concrete(inner, depth + 1,
                      [](auto x) { return AnyBijector<T>(Invert<decltype(x)>(std::move(x))); });
    } catch (const std::invalid_argument& e) {  // a constructor refused a value from the file
      bad(prefix, e.what());
    }
  }

  /// A "Chain" node as a DynamicChain; any other node as a chain of that one part.
  DynamicChain<T> chain(const Json& node, const std::string& prefix, int depth) {
    const NodeReader r(node, prefix);
    DynamicChain<T> out(dim_);
    if (r.type() != chain_type) {
      out.push_back(any(node, prefix, depth));
      return out;
    }
    check_node(r, depth);
    r.only({"type", "dim", "parts"});
    const Json& parts = r.field("parts");
    if (!parts.is_array()) bad(prefix, "field 'parts' must be a list of nodes, got ", show(parts));
    if (Index(parts.size()) > max_parts)
      bad(prefix, "a chain of ", parts.size(), " parts; at most ", max_parts, " allowed");
    for (std::size_t i = 0; i < parts.size(); ++i)
      out.push_back(any(parts[i], prefix + "." + std::to_string(i), depth + 1));
    return out;
  }

 private:
  void check_node(const NodeReader& r, int depth) {
    if (depth > max_depth) bad(r.where(), "chains and inversions nested more than ", max_depth, " deep");
    if (++nodes_ > max_nodes) bad(r.where(), "more than ", max_nodes, " bijectors in one flow");
    const Index d = r.integer("dim", 1, std::numeric_limits<Index>::max());
    if (d != dim_) bad(r.where(), "node has dim ", d, " but the flow has dim ", dim_);
  }

  /// Builds the node with the codec whose type_name is its "type", then wraps it.
  template <class Wrap>
  AnyBijector<T> concrete(const NodeReader& r, int depth, Wrap wrap) {
    const std::string type = r.type();
    if (type == chain_type) return wrap(chain(r.node(), r.where(), depth));
    std::optional<AnyBijector<T>> built;
    const auto try_codec = [&]<class X>(std::type_identity<X>) {
      if (type != Codec<X>::type_name) return false;
      built.emplace(wrap(Codec<X>::make(r, dim_, source_)));
      return true;
    };
    [&]<class... Xs>(TypeList<Xs...>) {
      (try_codec(std::type_identity<Xs>{}) || ...);
    }(RegisteredBijectors<T>{});
    if (!built)
      bad(r.where(), "unknown bijector type ", io::detail::describe(type), " (knead knows ", known_types<T>(),
          ")");
    return std::move(*built);
  }

  TensorSource<T>& source_;
  Index dim_;
  int nodes_ = 0;
};

/// Parses an architecture document from a file. @throws FormatError naming `where` if it is not JSON.
inline Json parse_architecture(const std::string& text, const std::string& where) {
  try {
    // Depth is limited while parsing, before a deep document could exhaust anything.
    return Json::parse(text, [&](int depth, Json::parse_event_t, Json&) {
      if (depth > 4 * max_depth + 8) bad(where, "the architecture is nested too deep");
      return true;
    });
  } catch (const Json::exception& e) {
    bad(where, "the architecture is not valid JSON: ", io::detail::printable(e.what(), 200));
  }
}

/// The validated architecture and tensors of a flow file, ready to build T values from.
struct FlowHeader {
  Json arch;
  Dtype stored;
  Index dim;
};

template <class T>
FlowHeader read_header(const SafetensorsFile& file, ScalarConversion conversion) {
  const auto& meta = file.metadata();
  const auto get = [&](const char* key) -> const std::string& {
    const auto it = meta.find(key);
    if (it == meta.end()) bad("metadata", "no '", key, "' entry: not a flow saved by knead::save");
    return it->second;
  };
  if (get("format") != "knead.flow")
    bad("metadata", "'format' is ", io::detail::describe(get("format")), ", expected 'knead.flow'");
  const std::string& version = get("knead.format_version");
  if (version.empty() || version.size() > 9 ||
      !std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; }))
    bad("metadata", "'knead.format_version' is ", io::detail::describe(version), ", not a version number");
  if (std::stoi(version) < 1)
    bad("metadata", "format version ", version, " does not exist (versions start at 1)");
  if (std::stoi(version) > flow_format_version)
    bad("metadata", "format version ", version, " is newer than this knead reads (", flow_format_version,
        "); update knead");
  FlowHeader h;
  const std::string& scalar = get("knead.scalar");
  if (scalar == "F32")
    h.stored = io::Dtype::F32;
  else if (scalar == "F64")
    h.stored = io::Dtype::F64;
  else
    bad("metadata", "'knead.scalar' is ", io::detail::describe(scalar), ", expected F32 or F64");
  if (h.stored != io::dtype_of<T> && conversion == ScalarConversion::forbid)
    bad("metadata", "the file holds ", scalar, " values but the flow's scalar is ",
        io::dtype_name(io::dtype_of<T>), "; pass ScalarConversion::allow to convert them");
  h.arch = parse_architecture(get("knead.flow"), "knead.flow");
  const NodeReader top(h.arch, "knead.flow");
  top.only({"dim", "base", "bijector"});
  std::uint64_t largest = 0;
  for (const io::TensorInfo& t : file.tensors()) largest = std::max(largest, t.element_count);
  const std::uint64_t limit = std::max(free_dim_limit, largest);
  h.dim =
      top.integer("dim", 1, Index(std::min<std::uint64_t>(limit, std::numeric_limits<std::int32_t>::max())));
  return h;
}

template <class Flow, class T = typename Flow::Scalar>
Flow build_flow(const SafetensorsFile& file, ScalarConversion conversion) {
  const FlowHeader h = read_header<T>(file, conversion);
  TensorSource<T> source(file, h.stored);
  const NodeReader top(h.arch, "knead.flow");
  auto base = build_base<std::remove_cvref_t<decltype(std::declval<Flow&>().base())>, T>(top.field("base"),
                                                                                         h.dim, source);
  using B = std::remove_cvref_t<decltype(std::declval<Flow&>().bijector())>;
  Builder<T> builder(source, h.dim);
  const Json& node = top.field("bijector");
  auto bijector = [&] {
    if constexpr (std::is_same_v<B, DynamicChain<T>>)
      return builder.chain(node, "bijector", 1);
    else if constexpr (std::is_same_v<B, AnyBijector<T>>)
      return builder.any(node, "bijector", 1);
    else
      static_assert(sizeof(B) == 0,
                    "knead::load_as builds DynamicChain or AnyBijector flows; use load_into for others");
  }();
  source.check_all_used();
  return Flow(std::move(base), std::move(bijector));
}

inline SafetensorsFile read_flow_file(const std::filesystem::path& path) {
  return SafetensorsFile::load(path);
}

/// Adds the path to a FormatError from the content of a file.
template <class F>
auto naming_file(const std::filesystem::path& path, F&& f) {
  try {
    return f();
  } catch (const FormatError& e) {
    const std::string where = io::detail::quoted(path), what = e.what();
    if (what.find(where) != std::string::npos) throw;  // the safetensors layer named it already
    throw FormatError(what + " (in " + where + ")");
  }
}

}  // namespace io::flow_detail

// ---- public API -------------------------------------------------------------------------------------

/// Metadata a program stores beside the flow (string → string, e.g. how the data was prepared and
/// how the flow was trained); load ignores it and io::SafetensorsFile::metadata() reads it back.
/// Keys may not start with "knead." nor be "format": those describe the flow itself.
using FlowMetadata = std::map<std::string, std::string>;

/// The bytes of a flow file (see save). @throws std::invalid_argument for a part knead cannot describe
/// or a reserved metadata key.
template <class Base, class B>
io::Bytes flow_bytes(const TransformedDistribution<Base, B>& flow, const FlowMetadata& metadata = {}) {
  using T = typename B::Scalar;
  using namespace io::flow_detail;
  io::SafetensorsWriter writer;
  writer.write_data_checksum(true);
  for (const auto& [key, value] : metadata) {
    if (key == "format" || key.starts_with("knead."))
      detail::fail("save", "metadata key '", key, "' is reserved for the flow's own description");
    writer.set_metadata(key, value);
  }
  TensorSink<T> sink{writer};
  Json arch{{"dim", flow.dim()}};
  arch["base"] = save_base<T>(flow.base(), sink);
  arch["bijector"] = save_node<T>(flow.bijector(), "bijector", sink);
  writer.set_metadata("format", "knead.flow");
  writer.set_metadata("knead.format_version", std::to_string(flow_format_version));
  writer.set_metadata("knead.scalar", std::string(io::dtype_name(io::dtype_of<T>)));
  writer.set_metadata("knead.flow", arch.dump());
  return writer.bytes();
}

/// Writes a flow to `path` atomically (the previous file stays whole if anything fails).
template <class Base, class B>
void save(const TransformedDistribution<Base, B>& flow, const std::filesystem::path& path,
          const io::AtomicWriteOptions& options = {}) {
  io::write_file_atomically(path, flow_bytes(flow), options);
}
/// save(flow, path) with `metadata` stored beside the flow (see FlowMetadata).
template <class Base, class B>
void save(const TransformedDistribution<Base, B>& flow, const std::filesystem::path& path,
          const FlowMetadata& metadata, const io::AtomicWriteOptions& options = {}) {
  io::write_file_atomically(path, flow_bytes(flow, metadata), options);
}

/// Builds a flow of type Flow = TransformedDistribution<Base, DynamicChain<T> or AnyBijector<T>>
/// from a parsed file. @throws FormatError saying what is wrong with the file.
template <class Flow>
Flow load_as(const io::SafetensorsFile& file, ScalarConversion conversion = ScalarConversion::forbid) {
  return io::flow_detail::build_flow<Flow>(file, conversion);
}
template <class Flow>
Flow load_as(const std::filesystem::path& path, ScalarConversion conversion = ScalarConversion::forbid) {
  return io::flow_detail::naming_file(
      path, [&] { return load_as<Flow>(io::SafetensorsFile::load(path), conversion); });
}

/// Rebuilds a saved flow from the file alone.
template <class T>
LoadedFlow<T> load(const std::filesystem::path& path,
                   ScalarConversion conversion = ScalarConversion::forbid) {
  return load_as<LoadedFlow<T>>(path, conversion);
}
template <class T>
LoadedFlow<T> load(const io::SafetensorsFile& file, ScalarConversion conversion = ScalarConversion::forbid) {
  return load_as<LoadedFlow<T>>(file, conversion);
}

/// Sets the parameters, BatchNorm statistics and modes of `flow` from a file of the same
/// architecture. On any error `flow` is unchanged. @throws FormatError naming the first mismatch.
template <class Base, class B>
void load_into(TransformedDistribution<Base, B>& flow, const io::SafetensorsFile& file,
               ScalarConversion conversion = ScalarConversion::forbid) {
  using T = typename B::Scalar;
  using namespace io::flow_detail;
  const FlowHeader h = read_header<T>(file, conversion);
  io::SafetensorsWriter scratch;
  TensorSink<T> discard{scratch};
  const Json ours{{"dim", flow.dim()},
                  {"base", save_base<T>(flow.base(), discard)},
                  {"bijector", save_node<T>(flow.bijector(), "bijector", discard)}};
  if (const auto d = first_difference(ours, h.arch, "architecture"))
    knead::detail::fail<FormatError>("load_into", "the file's flow differs from this one at ", *d);
  TensorSource<T> source(file, h.stored);
  TransformedDistribution<Base, B> copy = flow;  // filled completely before it replaces flow
  try {
    load_base<T>(copy.base(), source);
    load_node<T>(copy.bijector(), h.arch["bijector"], "bijector", source);
  } catch (const std::invalid_argument& e) {  // a setter refused a value (e.g. a negative variance)
    knead::detail::fail<FormatError>("load_into", e.what());
  }
  source.check_all_used();
  flow = std::move(copy);
}
template <class Base, class B>
void load_into(TransformedDistribution<Base, B>& flow, const std::filesystem::path& path,
               ScalarConversion conversion = ScalarConversion::forbid) {
  io::flow_detail::naming_file(path, [&] { load_into(flow, io::SafetensorsFile::load(path), conversion); });
}

// ---- state that is not a parameter, for training checkpoints ----------------------------------------

/// The state of a flow's bijector that is not a parameter: the BatchNorm running statistics, and
/// the architecture they belong to (the bijector's node as save writes it, BatchNorm modes included;
/// a bijector knead cannot describe appears as {"type": its name, "dim": D}, without state).
template <class T>
struct FlowState {
  std::string architecture;                       ///< JSON
  std::map<std::string, std::vector<T>> buffers;  ///< named as in a flow file: "bijector.3.running_mean"
};

/// The non-parameter state of `flow` (its parameters are not included).
template <class Base, class B>
FlowState<typename B::Scalar> flow_state(const TransformedDistribution<Base, B>& flow) {
  using T = typename B::Scalar;
  using namespace io::flow_detail;
  io::SafetensorsWriter writer;
  TensorSink<T> sink{writer};
  FlowState<T> state;
  state.architecture = save_node<T, Tensors::buffers>(flow.bijector(), "bijector", sink).dump();
  const io::SafetensorsFile file(writer.bytes());
  for (const io::TensorInfo& t : file.tensors()) state.buffers.emplace(t.name, file.read<T>(t.name));
  return state;
}

/// Sets the non-parameter state of `flow`, whose bijector must have the architecture of `state`
/// (BatchNorm modes aside, which are taken from `state`). On any error `flow` is unchanged.
/// @throws FormatError naming the first difference of architecture, or a missing, extra, misshapen or
///         non-finite tensor, or a statistic BatchNorm refuses (a negative variance).
template <class Base, class B>
void set_flow_state(TransformedDistribution<Base, B>& flow, const FlowState<typename B::Scalar>& state) {
  using T = typename B::Scalar;
  using namespace io::flow_detail;
  const Json theirs = parse_architecture(state.architecture, "flow state");
  io::SafetensorsWriter scratch;
  TensorSink<T> discard{scratch};
  const Json ours = save_node<T, Tensors::buffers>(flow.bijector(), "bijector", discard);
  if (const auto d = first_difference(ours, theirs, "bijector"))
    knead::detail::fail<FormatError>("set_flow_state", "the state's flow differs from this one at ", *d);
  TransformedDistribution<Base, B> copy = flow;  // filled completely before it replaces flow
  try {
    // The buffers pass through a safetensors file so that the loader's checks apply to them.
    io::SafetensorsWriter writer;
    for (const auto& [name, values] : state.buffers)
      writer.add(name, std::span<const T>(values), {std::uint64_t(values.size())});
    const io::SafetensorsFile file(writer.bytes());
    TensorSource<T> source(file, io::dtype_of<T>);
    load_node<T, Tensors::buffers>(copy.bijector(), theirs, "bijector", source);
    source.check_all_used();
  } catch (const std::invalid_argument& e) {  // a reserved name, a negative variance
    knead::detail::fail<FormatError>("set_flow_state", e.what());
  }
  flow = std::move(copy);
}

}  // namespace knead
