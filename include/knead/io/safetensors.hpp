#pragma once
/// @file
/// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON header, then the
/// raw little-endian tensor data. The header maps each tensor name to {"dtype", "shape",
/// "data_offsets": [begin, end]} (offsets relative to the data section, shapes in row-major order) and
/// may hold "__metadata__", an object of string → string.
///
/// The reader treats its input as hostile: every length, count and offset is checked (with overflow
/// guards) against the real size of the buffer before it is used, so a broken file gives a FormatError
/// saying what is wrong, never a crash or a huge allocation. Like the reference implementation it
/// requires the tensors to cover the data section exactly: no overlap, no gap, no trailing bytes.
///
/// Data checksum: a writer asked for it (SafetensorsWriter::write_data_checksum; knead::save and the
/// training checkpoints do) stores the CRC-32 of the whole data section in the metadata key
/// `knead.data_crc32`, as 8 lowercase hexadecimal digits. A file with that key is refused on load
/// (FormatError giving both values) when its data section does not match; a file without it (from
/// another writer or an older knead) loads unchecked.

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"
#include "knead/io/errors.hpp"
#include "knead/io/file.hpp"

namespace knead::io {

/// The element types of the format. knead writes F32 and F64 and converts only those two; files
/// holding other dtypes still parse, and their tensors can be listed and viewed as bytes.
enum class Dtype { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

namespace detail {

struct DtypeInfo {
  Dtype dtype;
  std::string_view name;
  std::uint64_t size;
};
inline constexpr std::array<DtypeInfo, 15> dtype_table{{{Dtype::BOOL, "BOOL", 1},
                                                        {Dtype::U8, "U8", 1},
                                                        {Dtype::I8, "I8", 1},
                                                        {Dtype::F8_E5M2, "F8_E5M2", 1},
                                                        {Dtype::F8_E4M3, "F8_E4M3", 1},
                                                        {Dtype::I16, "I16", 2},
                                                        {Dtype::U16, "U16", 2},
                                                        {Dtype::F16, "F16", 2},
                                                        {Dtype::BF16, "BF16", 2},
                                                        {Dtype::I32, "I32", 4},
                                                        {Dtype::U32, "U32", 4},
                                                        {Dtype::F32, "F32", 4},
                                                        {Dtype::I64, "I64", 8},
                                                        {Dtype::U64, "U64", 8},
                                                        {Dtype::F64, "F64", 8}}};

}  // namespace detail

inline std::string_view dtype_name(Dtype dtype) { return detail::dtype_table[static_cast<int>(dtype)].name; }
/// Bytes per element.
inline std::uint64_t dtype_size(Dtype dtype) { return detail::dtype_table[static_cast<int>(dtype)].size; }
inline std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const auto& info : detail::dtype_table)
    if (info.name == name) return info.dtype;
  return std::nullopt;
}

/// The dtype that stores T exactly: F32 for float, F64 for double.
template <class T>
inline constexpr Dtype dtype_of = std::is_same_v<T, float> ? Dtype::F32 : Dtype::F64;

/// One tensor's header entry.
struct TensorInfo {
  std::string name;
  Dtype dtype;
  std::vector<std::uint64_t> shape;  ///< row-major (C order); empty for a scalar
  std::uint64_t element_count;       ///< product of shape (1 for a scalar, 0 if a dimension is 0)
  std::uint64_t begin, end;          ///< byte range within the data section
};

/// Whether reading an F64 tensor as float (which rounds) is accepted.
enum class Narrowing { forbid, allow };

/// The first non-finite element of a tensor, by row-major index.
struct NonFinite {
  std::uint64_t index;
  double value;
};

namespace detail {

template <class T>
void check_scalar() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "knead reads and writes float or double");
}

/// Text from the file as it appears in a message: cut to `limit` bytes on a UTF-8 character boundary
/// (a hostile header can be huge), control characters shown as '?'.
inline std::string printable(std::string_view text, std::size_t limit) {
  std::size_t cut = std::min(text.size(), limit);
  while (cut < text.size() && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  std::string out;
  for (const char c : text.substr(0, cut))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return cut < text.size() ? out + "…" : out;
}

/// A tensor or key name as it appears in a message.
inline std::string describe(std::string_view name) {
  // Built by appending: GCC 12 reports a false -Wrestrict for "'" + std::string.
  std::string out(1, '\'');
  out.append(printable(name, 80)).push_back('\'');
  return out;
}

/// A JSON value as it appears in a message: ASCII, cut to 80 bytes (a hostile header can be huge).
inline std::string brief(const nlohmann::json& value) {
  return printable(value.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace), 80);
}

/// Loads a little-endian IEEE value; shifts rather than memcpy so the host's byte order does not matter.
template <class Stored>
Stored load_le(const std::uint8_t* p) {
  using Bits = std::conditional_t<sizeof(Stored) == 4, std::uint32_t, std::uint64_t>;
  Bits bits = 0;
  for (std::size_t i = 0; i < sizeof(Bits); ++i) bits |= static_cast<Bits>(p[i]) << (8 * i);
  return std::bit_cast<Stored>(bits);
}

template <class Stored>
void store_le(Stored value, std::uint8_t* p) {
  using Bits = std::conditional_t<sizeof(Stored) == 4, std::uint32_t, std::uint64_t>;
  const auto bits = std::bit_cast<Bits>(value);
  for (std::size_t i = 0; i < sizeof(Bits); ++i) p[i] = static_cast<std::uint8_t>(bits >> (8 * i));
}

/// The table of the reflected CRC-32 polynomial 0xEDB88320 (ISO-HDLC: zlib, PNG, gzip), one entry
/// per byte value: entry b is b's remainder after 8 shift-and-conditional-xor steps.
inline constexpr std::array<std::uint32_t, 256> crc32_table = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t b = 0; b < 256; ++b) {
    std::uint32_t r = b;
    for (int k = 0; k < 8; ++k) r = (r & 1u) != 0 ? (r >> 1) ^ 0xEDB88320u : r >> 1;
    table[b] = r;
  }
  return table;
}();

/// CRC-32/ISO-HDLC of `bytes`: initial value and final xor 0xFFFFFFFF, reflected input and output,
/// one table lookup per byte (crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)). Check value: the
/// CRC-32 of the 9 ASCII bytes "123456789" is 0xCBF43926. Passing the CRC of the bytes before
/// continues it: crc32(b, crc32(a)) is the CRC-32 of a followed by b.
inline std::uint32_t crc32(std::span<const std::uint8_t> bytes, std::uint32_t previous = 0) {
  std::uint32_t crc = previous ^ 0xFFFFFFFFu;
  for (const std::uint8_t b : bytes) crc = crc32_table[(crc ^ b) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

/// A CRC as the metadata stores it: 8 lowercase hexadecimal digits.
inline std::string crc32_text(std::uint32_t crc) {
  std::string text(8, '0');
  for (int i = 7; i >= 0; --i, crc >>= 4) text[static_cast<std::size_t>(i)] = "0123456789abcdef"[crc & 0xFu];
  return text;
}

/// Product of a shape, or nullopt if it overflows. A zero dimension makes it 0 whatever the others.
inline std::optional<std::uint64_t> element_count(const std::vector<std::uint64_t>& shape) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  std::uint64_t count = 1;
  for (const auto d : shape) {
    if (count > std::numeric_limits<std::uint64_t>::max() / d) return std::nullopt;
    count *= d;
  }
  return count;
}

}  // namespace detail

/// The metadata key holding the CRC-32 of the data section (see the file comment).
inline constexpr std::string_view data_checksum_key = "knead.data_crc32";

/// A parsed safetensors file. It owns its bytes; tensors are decoded on request.
class SafetensorsFile {
 public:
  /// The cap on the JSON header, that of the reference implementation (the Rust crate safetensors
  /// refuses a header longer than 100,000,000 bytes as HeaderTooLarge).
  static constexpr std::uint64_t max_header_bytes = 100'000'000;
  /// The cap on a tensor's extent: the product of its non-zero dimensions times its element size
  /// is at most 2^48 bytes, the virtual address space of x86-64 and AArch64. A tensor beyond it
  /// could not be held in memory once its zero dimensions (if any) were non-zero; without the cap a
  /// zero-element shape such as [0, 1844674407741910323] would pass, and code looping over its
  /// other dimension would run for years.
  static constexpr std::uint64_t max_tensor_extent_bytes = std::uint64_t{1} << 48;

  /// Parses and validates a whole file held in memory. @throws FormatError saying what is wrong.
  explicit SafetensorsFile(Bytes bytes) : bytes_(std::move(bytes)) {
    if (bytes_.size() < 8) bad("file has ", bytes_.size(), " bytes, too short for the 8-byte header length");
    const std::uint64_t header_bytes = checked_header_length(bytes_.data(), bytes_.size());
    parse(header_bytes, bytes_.size() - 8 - header_bytes);
    verify_checksum();
  }

  /// Reads and parses a file: first the 8-byte header length, checked against max_header_bytes and
  /// the file's size; then the header, whose tensors are checked against the size of the data
  /// section; only then the data. A file that lies about its sizes is refused before anything
  /// of the size it claims is allocated or read.
  /// @throws FileError if it cannot be read, FormatError if it is malformed.
  static SafetensorsFile load(const std::filesystem::path& path,
                              std::uint64_t max_bytes = default_max_file_bytes) {
    try {
      FileReader file(path, max_bytes, "SafetensorsFile::load");
      return SafetensorsFile(file);
    } catch (const FormatError& e) {
      knead::detail::fail<FormatError>("SafetensorsFile::load", detail::quoted(path), ": ", e.what());
    }
  }

  /// Every tensor, in the order of its data in the file.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }
  bool contains(std::string_view name) const { return index_.find(name) != index_.end(); }

  /// @throws FormatError if there is no tensor of that name.
  const TensorInfo& tensor(std::string_view name) const {
    const auto it = index_.find(name);
    if (it == index_.end())
      knead::detail::fail<FormatError>("SafetensorsFile", "no tensor named ", detail::describe(name));
    return tensors_[it->second];
  }

  /// The raw little-endian bytes of a tensor, a view into this file.
  std::span<const std::uint8_t> bytes(std::string_view name) const {
    const TensorInfo& t = tensor(name);
    return std::span<const std::uint8_t>(bytes_).subspan(data_start_ + t.begin, t.end - t.begin);
  }

  /// A tensor's elements in row-major order, converted to T. F32 → double is exact; F64 → float
  /// rounds, so it needs Narrowing::allow, and a finite value beyond float's range is an error rather
  /// than an infinity. Non-finite values are passed through (see find_non_finite).
  /// @throws FormatError for a missing tensor, a dtype other than F32/F64, or a refused narrowing.
  template <class T>
  std::vector<T> read(std::string_view name, Narrowing narrowing = Narrowing::forbid) const {
    detail::check_scalar<T>();
    const TensorInfo& t = tensor(name);
    const std::uint8_t* p = bytes_.data() + data_start_ + t.begin;
    std::vector<T> out(static_cast<std::size_t>(t.element_count));
    if (t.dtype == Dtype::F32) {
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<T>(detail::load_le<float>(p + 4 * i));
    } else if (t.dtype == Dtype::F64) {
      if constexpr (std::is_same_v<T, float>) {
        if (narrowing == Narrowing::forbid)
          knead::detail::fail<FormatError>("SafetensorsFile::read", "tensor ", detail::describe(name),
                                           " is stored as F64; reading it as float rounds it, so pass "
                                           "Narrowing::allow to accept that");
      }
      for (std::size_t i = 0; i < out.size(); ++i) {
        const double v = detail::load_le<double>(p + 8 * i);
        if (std::isfinite(v) && std::abs(v) > static_cast<double>(std::numeric_limits<T>::max()))
          knead::detail::fail<FormatError>("SafetensorsFile::read", "tensor ", detail::describe(name),
                                           ": value ", v, " at index ", i, " is beyond the range of float");
        out[i] = static_cast<T>(v);
      }
    } else {
      knead::detail::fail<FormatError>("SafetensorsFile::read", "tensor ", detail::describe(name),
                                       " has dtype ", dtype_name(t.dtype),
                                       "; knead converts only F32 and F64");
    }
    return out;
  }

  /// A 2-D tensor [rows, cols] as an Eigen matrix. @throws FormatError if the tensor is not 2-D.
  template <class T>
  Matrix<T> read_matrix(std::string_view name, Narrowing narrowing = Narrowing::forbid) const {
    const TensorInfo& t = tensor(name);
    if (t.shape.size() != 2) fail_rank("read_matrix", t, 2);
    const std::vector<T> values = read<T>(name, narrowing);
    const auto rows = checked_index("read_matrix", t, t.shape[0]),
               cols = checked_index("read_matrix", t, t.shape[1]);
    if (values.empty()) return Matrix<T>(rows, cols);  // no copy: it would loop over the other dimension
    return Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(values.data(),
                                                                                               rows, cols);
  }

  /// A 1-D tensor [n] as an Eigen vector. @throws FormatError if the tensor is not 1-D.
  template <class T>
  Vector<T> read_vector(std::string_view name, Narrowing narrowing = Narrowing::forbid) const {
    const TensorInfo& t = tensor(name);
    if (t.shape.size() != 1) fail_rank("read_vector", t, 1);
    const std::vector<T> values = read<T>(name, narrowing);
    return Eigen::Map<const Vector<T>>(values.data(), checked_index("read_vector", t, t.shape[0]));
  }

  /// Scans an F32 or F64 tensor for NaN or ±∞ and reports the first one, if any.
  std::optional<NonFinite> find_non_finite(std::string_view name) const {
    const std::vector<double> values = read<double>(name);
    for (std::size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i])) return NonFinite{i, values[i]};
    return std::nullopt;
  }

  /// @throws FormatError naming the tensor, the index and the value if it holds a NaN or ±∞.
  void require_finite(std::string_view name) const {
    if (const auto bad = find_non_finite(name))
      knead::detail::fail<FormatError>("SafetensorsFile", "tensor ", detail::describe(name),
                                       " has a non-finite value ", bad->value, " at index ", bad->index);
  }

 private:
  template <class... Parts>
  [[noreturn]] static void bad(const Parts&... parts) {
    knead::detail::fail<FormatError>("SafetensorsFile", parts...);
  }

  [[noreturn]] static void fail_rank(std::string_view function, const TensorInfo& t, std::size_t rank) {
    knead::detail::fail<FormatError>(std::string("SafetensorsFile::") + std::string(function), "tensor ",
                                     detail::describe(t.name), " has ", t.shape.size(),
                                     " dimensions, expected ", rank);
  }

  static Index checked_index(std::string_view function, const TensorInfo& t, std::uint64_t d) {
    if (d > static_cast<std::uint64_t>(std::numeric_limits<Index>::max()))
      knead::detail::fail<FormatError>(std::string("SafetensorsFile::") + std::string(function), "tensor ",
                                       detail::describe(t.name), " has a dimension of ", d, ", too large");
    return static_cast<Index>(d);
  }

  /// A non-negative JSON integer. nlohmann stores non-negative literals as unsigned, except "-0".
  static std::uint64_t unsigned_field(const nlohmann::json& v, const std::string& name,
                                      std::string_view what) {
    if (!v.is_number_integer())
      bad("tensor ", detail::describe(name), ": ", what, " ", detail::brief(v), " is not an integer");
    if (v.is_number_unsigned()) return v.get<std::uint64_t>();
    const auto value = v.get<std::int64_t>();
    if (value < 0) bad("tensor ", detail::describe(name), ": ", what, " ", value, " is negative");
    return static_cast<std::uint64_t>(value);
  }

  static nlohmann::json parse_header(const std::uint8_t* first, const std::uint8_t* last) {
    // A valid header nests three containers deep (file → tensor → shape). Deeper input is refused as
    // it is read, and duplicate keys, which nlohmann would silently overwrite, are caught per object.
    std::vector<std::set<std::string>> keys;
    const auto check = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
      using Event = nlohmann::json::parse_event_t;
      if ((event == Event::object_start || event == Event::array_start) && depth >= 3)
        bad("header nests deeper than a safetensors header can");
      if (event == Event::object_start) keys.emplace_back();
      if (event == Event::object_end) keys.pop_back();
      if (event == Event::key && !keys.back().insert(parsed.get<std::string>()).second)
        bad("header has the key ", detail::describe(parsed.get<std::string>()), " twice",
            depth == 1 ? " (duplicate tensor name)" : "");
      return true;
    };
    try {
      return nlohmann::json::parse(first, last, check);
    } catch (const nlohmann::json::exception& e) {
      bad("header is not valid JSON: ", detail::printable(e.what(), 240));  // what() may quote a long token
    }
  }

  /// Reads a file in three steps (see load). The reader is at the start of the file.
  explicit SafetensorsFile(FileReader& file) {
    const std::uint64_t size = file.size();
    if (size < 8) bad("file has ", size, " bytes, too short for the 8-byte header length");
    bytes_.resize(8);
    file.read(bytes_);
    const std::uint64_t header_bytes = checked_header_length(bytes_.data(), size);
    bytes_.resize(static_cast<std::size_t>(8 + header_bytes));
    file.read(std::span<std::uint8_t>(bytes_).subspan(8));
    parse(header_bytes, size - 8 - header_bytes);
    bytes_.resize(static_cast<std::size_t>(size));
    file.read(std::span<std::uint8_t>(bytes_).subspan(static_cast<std::size_t>(data_start_)));
    file.expect_end();
    verify_checksum();
  }

  /// With a `knead.data_crc32` entry: checks the data section against it.
  void verify_checksum() const {
    const auto it = metadata_.find(data_checksum_key);
    if (it == metadata_.end()) return;
    const std::string& stored = it->second;
    if (stored.size() != 8 || stored.find_first_not_of("0123456789abcdef") != std::string::npos)
      bad("metadata '", data_checksum_key, "' is ", detail::describe(stored),
          ", not 8 lowercase hexadecimal digits");
    const std::string actual = detail::crc32_text(
        detail::crc32(std::span<const std::uint8_t>(bytes_).subspan(static_cast<std::size_t>(data_start_))));
    if (actual != stored)
      bad("the tensor data is corrupted: its CRC-32 is ", actual, " but the metadata '", data_checksum_key,
          "' records ", stored);
  }

  /// The header length stored in the first 8 bytes of a file of `file_bytes` bytes, checked.
  static std::uint64_t checked_header_length(const std::uint8_t* first_8_bytes, std::uint64_t file_bytes) {
    const std::uint64_t header_bytes = detail::load_le<std::uint64_t>(first_8_bytes);
    if (header_bytes > max_header_bytes)
      bad("header length ", header_bytes, " exceeds the limit of ", max_header_bytes, " bytes");
    if (header_bytes > file_bytes - 8)
      bad("header length ", header_bytes, " is larger than the ", file_bytes - 8,
          " bytes after the length field (truncated file?)");
    return header_bytes;
  }

  /// Parses the header in bytes_[8, 8 + header_bytes) and checks its tensors against a data section
  /// of `data_bytes` bytes (which bytes_ need not hold yet).
  void parse(std::uint64_t header_bytes, std::uint64_t data_bytes) {
    data_start_ = 8 + header_bytes;
    const nlohmann::json header = parse_header(bytes_.data() + 8, bytes_.data() + data_start_);
    if (!header.is_object()) bad("header must be a JSON object, got ", header.type_name());
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") {
        if (!entry.is_object()) bad("__metadata__ must be an object of strings, got ", entry.type_name());
        for (const auto& [key, value] : entry.items()) {
          if (!value.is_string())
            bad("__metadata__ value of ", detail::describe(key), " must be a string, got ",
                value.type_name());
          metadata_.emplace(key, value.get<std::string>());
        }
      } else {
        tensors_.push_back(parse_tensor(name, entry, data_bytes));
      }
    }

    std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
      return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
    });
    std::uint64_t covered = 0;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      const TensorInfo& t = tensors_[i];
      if (t.begin < covered)
        bad("tensor ", detail::describe(t.name), " (bytes ", t.begin, "..", t.end, ") overlaps tensor ",
            detail::describe(tensors_[i - 1].name), " (bytes ", tensors_[i - 1].begin, "..",
            tensors_[i - 1].end, ")");
      if (t.begin > covered)
        bad("gap of ", t.begin - covered, " unused bytes before tensor ", detail::describe(t.name),
            " (the data section must be fully covered)");
      covered = t.end;
      index_.emplace(t.name, i);
    }
    if (covered != data_bytes)
      bad("data section has ", data_bytes, " bytes but the tensors cover only ", covered, " (",
          data_bytes - covered, " trailing bytes)");
  }

  static TensorInfo parse_tensor(const std::string& name, const nlohmann::json& entry,
                                 std::uint64_t data_bytes) {
    const auto who = detail::describe(name);
    if (!entry.is_object()) bad("tensor ", who, " must be an object, got ", entry.type_name());
    for (const auto& [key, value] : entry.items())
      if (key != "dtype" && key != "shape" && key != "data_offsets")
        bad("tensor ", who, " has an unknown field ", detail::describe(key));
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!entry.contains(key)) bad("tensor ", who, " has no \"", key, "\" field");

    TensorInfo t{name, Dtype::F32, {}, 0, 0, 0};
    const auto& dtype = entry["dtype"];
    if (!dtype.is_string()) bad("tensor ", who, ": dtype must be a string, got ", dtype.type_name());
    const auto parsed = dtype_from_name(dtype.get<std::string>());
    if (!parsed) bad("tensor ", who, " has an unknown dtype ", detail::describe(dtype.get<std::string>()));
    t.dtype = *parsed;

    const auto& shape = entry["shape"];
    if (!shape.is_array()) bad("tensor ", who, ": shape must be an array, got ", shape.type_name());
    for (const auto& d : shape) t.shape.push_back(unsigned_field(d, name, "shape entry"));
    // the extent: the product of the non-zero dimensions, in bytes
    std::uint64_t extent = dtype_size(t.dtype);
    bool beyond = false;
    for (const auto d : t.shape)
      if (d != 0 && !beyond) {
        beyond = extent > max_tensor_extent_bytes / d;
        extent *= beyond ? 1 : d;
      }
    if (beyond || extent > max_tensor_extent_bytes)
      bad("tensor ", who, ": shape ", detail::brief(shape), " of ", dtype_name(t.dtype),
          " spans more than 2^48 bytes (the product of its non-zero dimensions; no memory holds that)");
    t.element_count = *detail::element_count(t.shape);  // ≤ extent: no overflow
    const std::uint64_t expected = t.element_count * dtype_size(t.dtype);

    const auto& offsets = entry["data_offsets"];
    if (!offsets.is_array() || offsets.size() != 2)
      bad("tensor ", who, ": data_offsets must be an array [begin, end], got ", detail::brief(offsets));
    t.begin = unsigned_field(offsets[0], name, "data_offsets entry");
    t.end = unsigned_field(offsets[1], name, "data_offsets entry");
    if (t.begin > t.end) bad("tensor ", who, ": data_offsets [", t.begin, ", ", t.end, "] run backwards");
    if (t.end > data_bytes)
      bad("tensor ", who, ": data_offsets [", t.begin, ", ", t.end, "] go beyond the data section of ",
          data_bytes, " bytes");
    if (t.end - t.begin != expected)
      bad("tensor ", who, ": data_offsets [", t.begin, ", ", t.end, "] span ", t.end - t.begin,
          " bytes but shape ", detail::brief(shape), " of ", dtype_name(t.dtype), " needs ", expected);
    return t;
  }

  Bytes bytes_;
  std::uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::size_t, std::less<>> index_;
  std::map<std::string, std::string, std::less<>> metadata_;
};

/// Collects named float/double tensors and string metadata and lays them out as a safetensors file.
/// The bytes depend only on the content, not on the order of the calls: tensors are placed by
/// element size (F64 before F32, so each stays aligned to its size) and then by name, the header is
/// compact JSON padded with spaces to a multiple of 8 bytes, as the reference implementation does.
class SafetensorsWriter {
 public:
  using Shape = std::vector<std::uint64_t>;

  /// Adds a tensor of the given row-major shape ({} for a scalar).
  /// @throws std::invalid_argument for a duplicate or reserved name, invalid UTF-8, or a shape whose
  ///         element count differs from values.size().
  void add(std::string name, std::span<const float> values, Shape shape) {
    add_values(std::move(name), values, std::move(shape));
  }
  void add(std::string name, std::span<const double> values, Shape shape) {
    add_values(std::move(name), values, std::move(shape));
  }

  /// Adds a matrix as a 2-D tensor [rows, cols] in row-major order (safetensors' layout, not Eigen's).
  template <class Derived>
  void add_matrix(std::string name, const Eigen::MatrixBase<Derived>& m) {
    using T = typename Derived::Scalar;
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major = m;
    add_values(std::move(name),
               std::span<const T>(row_major.data(), static_cast<std::size_t>(row_major.size())),
               Shape{static_cast<std::uint64_t>(m.rows()), static_cast<std::uint64_t>(m.cols())});
  }

  /// Adds a column or row vector as a 1-D tensor [n].
  template <class Derived>
  void add_vector(std::string name, const Eigen::MatrixBase<Derived>& v) {
    using T = typename Derived::Scalar;
    if (v.rows() != 1 && v.cols() != 1)
      knead::detail::fail("SafetensorsWriter::add_vector", "tensor ", detail::describe(name), " is a ",
                          v.rows(), "x", v.cols(), " matrix, not a vector");
    const Vector<T> values = v.reshaped();
    add_values(std::move(name), std::span<const T>(values.data(), static_cast<std::size_t>(values.size())),
               Shape{static_cast<std::uint64_t>(values.size())});
  }

  /// Whether bytes() stores the CRC-32 of the data section as metadata `knead.data_crc32` (off by
  /// default, so the layout is that of any safetensors writer; knead::save and checkpoints turn it
  /// on). A `knead.data_crc32` entry given to set_metadata is replaced by the computed value when on
  /// and dropped when off, so a written file never carries a stale checksum.
  void write_data_checksum(bool on) { data_checksum_ = on; }

  /// Sets (or replaces) a metadata entry. @throws std::invalid_argument for invalid UTF-8.
  void set_metadata(std::string key, std::string value) {
    check_utf8("set_metadata", key);
    check_utf8("set_metadata", value);
    metadata_[std::move(key)] = std::move(value);
  }

  /// The whole file.
  Bytes bytes() const {
    std::vector<const Entry*> order;
    for (const auto& e : entries_) order.push_back(&e);
    std::sort(order.begin(), order.end(), [](const Entry* a, const Entry* b) {
      const auto sa = dtype_size(a->dtype), sb = dtype_size(b->dtype);
      return sa != sb ? sa > sb : a->name < b->name;
    });
    std::map<std::string, std::string> metadata = metadata_;
    metadata.erase(std::string(data_checksum_key));
    if (data_checksum_) {
      std::uint32_t crc = 0;  // of the data section: the tensors' bytes in file order
      for (const Entry* e : order) crc = detail::crc32(e->data, crc);
      metadata.emplace(std::string(data_checksum_key), detail::crc32_text(crc));
    }
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    for (const Entry* e : order) {
      nlohmann::ordered_json info = nlohmann::ordered_json::object();
      info["dtype"] = dtype_name(e->dtype);
      info["shape"] = e->shape;
      info["data_offsets"] = {offset, offset + e->data.size()};
      header[e->name] = std::move(info);
      offset += e->data.size();
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');

    Bytes out(8);
    detail::store_le<std::uint64_t>(text.size(), out.data());
    out.reserve(8 + text.size() + offset);
    out.insert(out.end(), text.begin(), text.end());
    for (const Entry* e : order) out.insert(out.end(), e->data.begin(), e->data.end());
    return out;
  }

  /// Writes the file atomically (see write_file_atomically).
  void write(const std::filesystem::path& path, const AtomicWriteOptions& options = {}) const {
    write_file_atomically(path, bytes(), options);
  }

 private:
  struct Entry {
    std::string name;
    Dtype dtype;
    Shape shape;
    Bytes data;
  };

  static void check_utf8(std::string_view function, const std::string& text) {
    try {
      (void)nlohmann::json(text).dump();
    } catch (const nlohmann::json::exception&) {
      knead::detail::fail(std::string("SafetensorsWriter::") + std::string(function), "string ",
                          detail::describe(text), " is not valid UTF-8");
    }
  }

  template <class T>
  void add_values(std::string name, std::span<const T> values, Shape shape) {
    constexpr std::string_view fn = "SafetensorsWriter::add";
    detail::check_scalar<T>();
    check_utf8("add", name);
    if (name == "__metadata__") knead::detail::fail(fn, "the name '__metadata__' is reserved for metadata");
    for (const auto& e : entries_)
      if (e.name == name) knead::detail::fail(fn, "tensor ", detail::describe(name), " was already added");
    const auto count = detail::element_count(shape);
    if (!count || *count != values.size())
      knead::detail::fail(fn, "tensor ", detail::describe(name), " has ", values.size(),
                          " values but its shape ", nlohmann::json(shape).dump(), " holds ",
                          count ? std::to_string(*count) : std::string("more than 2^64"));
    Bytes data(values.size() * sizeof(T));
    for (std::size_t i = 0; i < values.size(); ++i)
      detail::store_le<T>(values[i], data.data() + i * sizeof(T));
    entries_.push_back({std::move(name), dtype_of<T>, std::move(shape), std::move(data)});
  }

  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
  bool data_checksum_ = false;
};

}  // namespace knead::io
