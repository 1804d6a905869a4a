#pragma once
/// @file
/// Reading and writing NumPy .npy files: one sample per row, one dimension per column, as in CSV.
///
/// The format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor version byte, the
/// header length (2 bytes little-endian in version 1, 4 bytes in versions 2 and 3), then the header,
/// a Python dict literal such as {'descr': '<f8', 'fortran_order': False, 'shape': (1000, 2), }
/// padded with spaces and ended by '\n' (ASCII in versions 1 and 2, UTF-8 in version 3), then the
/// array's elements without gaps. An array of shape (N, D) is read as a D×N matrix (one sample per
/// column); shape (N,) is one column of N samples.
///
/// read_npy accepts the dtypes f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 in either byte order and both element
/// orders (fortran_order True or False). Integers are converted to T (an integer beyond 2^53, or
/// 2^24 for float, is rounded). Every value must be finite in T. A file that is malformed or hostile
/// (truncated, a header length beyond the file, a shape whose size overflows, an unknown or object
/// dtype, a missing or unknown key) gives a one-line std::invalid_argument naming the file and what
/// is wrong; nothing larger than the file is allocated before the sizes are checked against it.
/// A file that cannot be opened or read gives knead::FileError.

#include <bit>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "knead/core/errors.hpp"
#include "knead/core/types.hpp"
#include "knead/io/file.hpp"

namespace knead::data {

/// The data of a .npy file as a D×N matrix and the array's shape as stored ({N} or {N, D}).
template <class T>
struct NpyTable {
  std::vector<std::size_t> shape;
  Matrix<T> data;
};

/// What read_npy does with a NaN or infinite value (or one out of T's range): fail naming its row
/// and column (the default), or keep it for the caller to handle (a reader that leaves such rows out).
enum class NonFiniteValues { reject, keep };

namespace npy_detail {

inline constexpr std::string_view magic = "\x93NUMPY";

/// An element type: its kind ('f' float, 'i' signed, 'u' unsigned), size in bytes and byte order.
struct Dtype {
  char kind = 0;
  std::size_t size = 0;
  bool big_endian = false;
};

struct Header {
  Dtype dtype;
  bool fortran_order = false;
  std::vector<std::size_t> shape;
};

/// A recursive-descent reader of the header's dict literal; every failure names the source.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  Header parse() {
    Header header;
    bool has_descr = false, has_order = false, has_shape = false;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        header.dtype = dtype(string_literal());
        has_descr = true;
      } else if (key == "fortran_order") {
        header.fortran_order = boolean();
        has_order = true;
      } else if (key == "shape") {
        header.shape = shape();
        has_shape = true;
      } else {
        fail_here("unknown key '", key, "'");
      }
      skip_space();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      if (peek() != '}') fail_here("expected ',' or '}'");
    }
    ++at_;
    if (!has_descr) fail_here("the key 'descr' is missing");
    if (!has_order) fail_here("the key 'fortran_order' is missing");
    if (!has_shape) fail_here("the key 'shape' is missing");
    skip_space();
    if (at_ != text_.size()) fail_here("unexpected text after the dict");
    return header;
  }

 private:
  template <class... Parts>
  [[noreturn]] void fail_here(const Parts&... parts) const {
    // the header as far as its first line end, at most 120 bytes, so the message stays one line
    const std::string_view shown = text_.substr(0, std::min(text_.find('\n'), std::size_t{120}));
    knead::detail::fail("read_npy", source_, ": bad header: ", parts..., " (header: ", shown, ")");
  }
  void skip_space() {
    while (at_ < text_.size() && (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n')) ++at_;
  }
  char peek() const { return at_ < text_.size() ? text_[at_] : '\0'; }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail_here("expected '", c, "'");
    ++at_;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail_here("expected a quoted string");
    const std::size_t end = text_.find(quote, at_ + 1);
    if (end == std::string_view::npos) fail_here("unterminated string");
    std::string value(text_.substr(at_ + 1, end - at_ - 1));
    at_ = end + 1;
    return value;
  }
  bool boolean() {
    skip_space();
    if (text_.substr(at_).starts_with("True")) return at_ += 4, true;
    if (text_.substr(at_).starts_with("False")) return at_ += 5, false;
    fail_here("'fortran_order' must be True or False");
  }
  std::vector<std::size_t> shape() {
    std::vector<std::size_t> dims;
    expect('(');
    while (true) {
      skip_space();
      if (peek() == ')') break;
      std::size_t dim = 0;
      const char* first = text_.data() + at_;
      const auto [end, error] = std::from_chars(first, text_.data() + text_.size(), dim);
      if (error != std::errc() || end == first) fail_here("a dimension of 'shape' is not a size");
      at_ += static_cast<std::size_t>(end - first);
      if (dims.size() == 8) fail_here("'shape' has too many dimensions");
      dims.push_back(dim);
      skip_space();
      if (peek() == ',')
        ++at_;
      else if (peek() != ')')
        fail_here("expected ',' or ')' in 'shape'");
    }
    ++at_;
    return dims;
  }
  Dtype dtype(const std::string& descr) {
    if (descr.size() >= 2 && descr[1] == 'O') fail_here("object arrays ('", descr, "') are not supported");
    if (descr.size() < 3 || std::string_view("<>|=").find(descr[0]) == std::string_view::npos)
      fail_here("unsupported dtype '", descr, "'");
    Dtype d;
    d.kind = descr[1];
    d.big_endian = descr[0] == '>' || (descr[0] == '=' && std::endian::native == std::endian::big);
    const std::string_view size = std::string_view(descr).substr(2);
    const auto [end, error] = std::from_chars(size.data(), size.data() + size.size(), d.size);
    const bool known =
        error == std::errc() && end == size.data() + size.size() &&
        ((d.kind == 'f' && (d.size == 4 || d.size == 8)) ||
         ((d.kind == 'i' || d.kind == 'u') && (d.size == 1 || d.size == 2 || d.size == 4 || d.size == 8)));
    if (!known) fail_here("unsupported dtype '", descr, "' (supported: f4 f8 i1 i2 i4 i8 u1 u2 u4 u8)");
    return d;
  }

  std::string_view text_, source_;
  std::size_t at_ = 0;
};

/// The unsigned integer of `size` bytes at `p` in the file's byte order.
inline std::uint64_t load_bits(const std::uint8_t* p, std::size_t size, bool big_endian) {
  std::uint64_t bits = 0;
  for (std::size_t i = 0; i < size; ++i) {
    const std::size_t shift = 8 * (big_endian ? size - 1 - i : i);
    bits |= std::uint64_t{p[i]} << shift;
  }
  return bits;
}

/// One element as a double: the bits reinterpreted for floats, sign-extended for signed integers.
inline double load_value(const std::uint8_t* p, const Dtype& dtype) {
  const std::uint64_t bits = load_bits(p, dtype.size, dtype.big_endian);
  if (dtype.kind == 'f')
    return dtype.size == 4 ? double(std::bit_cast<float>(static_cast<std::uint32_t>(bits)))
                           : std::bit_cast<double>(bits);
  if (dtype.kind == 'u') return double(bits);
  const std::size_t unused = 64 - 8 * dtype.size;  // sign extension: shift the sign bit to bit 63
  return double(static_cast<std::int64_t>(bits << unused) >> unused);
}

template <class T>
NpyTable<T> parse(std::span<const std::uint8_t> bytes, std::string_view source, NonFiniteValues non_finite) {
  constexpr std::string_view fn = "read_npy";
  using knead::detail::fail;
  if (bytes.size() < 10 || std::memcmp(bytes.data(), magic.data(), magic.size()) != 0)
    fail(fn, source, " is not a .npy file (it does not start with \\x93NUMPY)");
  const unsigned major = bytes[6];
  if (major < 1 || major > 3) fail(fn, source, " has the unsupported format version ", major);
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  if (bytes.size() < 8 + length_bytes) fail(fn, source, " is truncated inside its header length");
  const std::uint64_t header_length = load_bits(bytes.data() + 8, length_bytes, false);
  const std::size_t header_start = 8 + length_bytes;
  if (header_length > bytes.size() - header_start)
    fail(fn, source, ": the header length ", header_length, " goes beyond the file's ", bytes.size(),
         " bytes");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + header_start),
                              static_cast<std::size_t>(header_length));
  const Header header = HeaderParser(text, source).parse();

  const std::vector<std::size_t>& shape = header.shape;
  if (shape.size() != 1 && shape.size() != 2)
    fail(fn, source, " holds an array of ", shape.size(), " dimensions; only (N,) and (N, D) are read");
  const std::size_t samples = shape[0], dims = shape.size() == 2 ? shape[1] : 1;
  if (samples == 0 || dims == 0) fail(fn, source, " holds an empty array (shape has a 0)");
  const std::size_t data_start = header_start + static_cast<std::size_t>(header_length);
  const std::size_t available = bytes.size() - data_start;
  // samples * dims * size, checked for overflow and against the file before anything is allocated
  constexpr std::size_t most = std::numeric_limits<std::size_t>::max();
  if (samples > most / dims || samples * dims > most / header.dtype.size)
    fail(fn, source, ": the byte count of the shape overflows (", samples, " × ", dims, " elements)");
  const std::size_t count = samples * dims;
  if (count * header.dtype.size != available)
    fail(fn, source, ": the shape needs ", count * header.dtype.size, " bytes of data, the file has ",
         available, " after the header");
  if (samples > std::size_t(std::numeric_limits<Index>::max()) ||
      dims > std::size_t(std::numeric_limits<Index>::max()))
    fail(fn, source, ": the shape is too large");

  NpyTable<T> table;
  table.shape = shape;
  table.data.resize(Index(dims), Index(samples));
  const std::uint8_t* data = bytes.data() + data_start;
  // C order stores element (n, d) at n*D + d, the column-major index of (d, n) in the D×N matrix;
  // Fortran order stores it at d*N + n.
  for (std::size_t n = 0; n < samples; ++n)
    for (std::size_t d = 0; d < dims; ++d) {
      const std::size_t flat = header.fortran_order ? d * samples + n : n * dims + d;
      const double value = load_value(data + flat * header.dtype.size, header.dtype);
      const T converted = static_cast<T>(value);
      if (non_finite == NonFiniteValues::reject && (!std::isfinite(value) || !std::isfinite(converted)))
        fail(fn, source, ": row ", n + 1, ", column ", d + 1, " has the non-finite value ", value);
      table.data(Index(d), Index(n)) = converted;
    }
  return table;
}

}  // namespace npy_detail

/// Reads a .npy file held in memory; `source` names it in error messages.
template <class T>
NpyTable<T> read_npy_bytes(std::span<const std::uint8_t> bytes, std::string_view source = "<bytes>",
                           NonFiniteValues non_finite = NonFiniteValues::reject) {
  return npy_detail::parse<T>(bytes, source, non_finite);
}

/// Reads a .npy file: the array as a D×N matrix (file rows are samples) and its shape.
template <class T>
NpyTable<T> read_npy(const std::filesystem::path& path,
                     NonFiniteValues non_finite = NonFiniteValues::reject) {
  const io::Bytes bytes = io::read_file_bytes(path);
  return npy_detail::parse<T>(bytes, io::detail::quoted(path), non_finite);
}

namespace npy_detail {

/// A version 1.0 file of `samples` rows of `dims` little-endian values of T in C order; `values` holds
/// them in that order (sample after sample).
template <class T>
io::Bytes encode(const T* values, std::size_t samples, std::size_t dims, bool one_dimensional) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "write_npy writes float or double");
  std::string dict = std::string("{'descr': '<f") + char('0' + sizeof(T)) +
                     "', 'fortran_order': False, 'shape': (" + std::to_string(samples) +
                     (one_dimensional ? ",), }" : ", " + std::to_string(dims) + "), }");
  // numpy pads the header with spaces so that the data starts at a multiple of 64 bytes.
  const std::size_t unpadded = magic.size() + 4 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  // Sized once and filled by index (GCC 12 reports a false -Wstringop-overflow for inserts here).
  const std::size_t data_start = magic.size() + 4 + dict.size();
  io::Bytes bytes(data_start + samples * dims * sizeof(T));
  std::memcpy(bytes.data(), magic.data(), magic.size());
  bytes[6] = 1;  // version 1.0
  bytes[7] = 0;
  bytes[8] = static_cast<std::uint8_t>(dict.size() & 0xFF);  // header length, little-endian
  bytes[9] = static_cast<std::uint8_t>(dict.size() >> 8);
  std::memcpy(bytes.data() + 10, dict.data(), dict.size());
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  for (std::size_t i = 0; i < samples * dims; ++i) {
    const Bits bits = std::bit_cast<Bits>(values[i]);
    for (std::size_t b = 0; b < sizeof(T); ++b)
      bytes[data_start + i * sizeof(T) + b] = static_cast<std::uint8_t>(bits >> (8 * b));
  }
  return bytes;
}

}  // namespace npy_detail

/// Writes a D×N matrix as a .npy file of shape (N, D) (one sample per row), dtype '<f4' or '<f8',
/// C order, format version 1.0; the file is replaced atomically (io::write_file_atomically).
/// Non-finite values are written as they are.
template <class T>
void write_npy(const std::filesystem::path& path, const Matrix<T>& data) {
  if (data.size() == 0)
    knead::detail::fail("write_npy", "the matrix for ", io::detail::quoted(path), " is empty (", data.rows(),
                        "×", data.cols(), ")");
  // The column-major D×N matrix lists sample after sample: the C order of the (N, D) array.
  io::write_file_atomically(
      path, npy_detail::encode(data.data(), std::size_t(data.cols()), std::size_t(data.rows()), false));
}

/// Writes N values (a log density per sample, say) as a .npy file of shape (N,).
template <class T>
void write_npy(const std::filesystem::path& path, const RowVector<T>& values) {
  if (values.size() == 0)
    knead::detail::fail("write_npy", "the values for ", io::detail::quoted(path), " are empty");
  io::write_file_atomically(path, npy_detail::encode(values.data(), std::size_t(values.size()), 1, true));
}

}  // namespace knead::data
