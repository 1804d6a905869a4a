#include "knead/linalg/gemm.hpp"

#include <limits>
#include <vector>

#include "support.hpp"

using namespace knead;
using linalg::PackedGemm;

namespace {

template <class T>
using Buffer = std::vector<T, Eigen::aligned_allocator<T>>;

/// How check_product() stores the product: C += A·B; C = max(A·B + bias, 0); C = A·B where a gate
/// is positive, else 0.
enum class Stored { add, bias_relu, gated };

/// C (+)= A · B(first .. first + depth, :) through pack_lhs and the chosen kernel, with B packed by
/// pack_rhs or (knead's kernel) read as stored, and so A where the kernel can, A and B given as
/// stored (transposed or not), against the plain product in double.
template <class T>
void check_product(bool own, bool b_packed, Index rows, Index depth, Index cols, Index first,
                   bool a_transposed, bool b_transposed, Stored stored, Rng& rng) {
  const Index full_depth = first + depth + 3;
  const Matrix<T> a = test::random_batch<T>(rows, depth, rng);       // A
  const Matrix<T> b = test::random_batch<T>(full_depth, cols, rng);  // B, all of its depth
  const Matrix<T> a_stored = a_transposed ? Matrix<T>(a.transpose()) : a;
  const Matrix<T> b_stored = b_transposed ? Matrix<T>(b.transpose()) : b;
  Buffer<T> packed_a(std::size_t(PackedGemm<T>::packed_lhs_size(rows, depth)), T(0));
  Buffer<T> packed_b(std::size_t(full_depth * cols), T(0));
  PackedGemm<T>::pack_lhs(own, packed_a.data(), a_stored.data(), a_stored.rows(), rows, depth, a_transposed);
  PackedGemm<T>::pack_rhs(own, packed_b.data(), b_stored.data(), b_stored.rows(), full_depth, cols,
                          b_transposed);
  // B(k, j) stored at b_stored[k·k_stride + j·col_stride], from row `first`
  const Index ld = b_stored.rows(), k_stride = b_transposed ? ld : 1, col_stride = b_transposed ? 1 : ld;
  const auto rhs = b_packed
                       ? linalg::RhsView<T>::packed(packed_b.data(), full_depth, first)
                       : linalg::RhsView<T>::stored(b_stored.data() + first * k_stride, k_stride, col_stride);
  // C starts non-zero and has a leading dimension larger than its rows: the product is added, and
  // nothing outside C's rows may be touched.
  const Index ldc = rows + 5;
  Matrix<T> c = test::random_batch<T>(ldc, cols, rng);
  const Matrix<T> before = c;
  const Vector<T> bias = test::random_batch<T>(rows, 1, rng);
  const Matrix<T> gate = test::random_batch<T>(rows + 2, cols, rng);  // leading dimension rows + 2
  linalg::Store<T> store;
  if (stored == Stored::bias_relu) store = {true, bias.data(), true, nullptr, 0};
  if (stored == Stored::gated) store = {true, nullptr, false, gate.data(), gate.rows()};
  // knead's kernel with B as stored also reads A as stored where it can (whole 16-row vectors)
  const bool a_as_stored = own && !b_packed && !a_transposed && rows % 16 == 0;
  PackedGemm<T>::multiply(own, c.data(), ldc, a_as_stored ? a_stored.data() : packed_a.data(),
                          a_as_stored ? a_stored.rows() : 0, rows, depth, rhs, cols, store);
  const Eigen::MatrixXd product =
      a.template cast<double>() * b.middleRows(first, depth).template cast<double>();
  Eigen::MatrixXd expected = before.topRows(rows).template cast<double>() + product;
  if (stored == Stored::bias_relu)
    expected = (product.colwise() + bias.template cast<double>()).cwiseMax(0.0);
  if (stored == Stored::gated)
    expected = (gate.topRows(rows).array() > T(0)).template cast<double>() * product.array();
  // rounding: about one ulp of |c| ≈ √depth per multiply-add, depth of them
  const double tolerance = 4 * double(std::numeric_limits<T>::epsilon()) * double(depth + 4);
  CHECK((c.topRows(rows).template cast<double>() - expected).cwiseAbs().maxCoeff() <= tolerance);
  CHECK(c.bottomRows(ldc - rows) == before.bottomRows(ldc - rows));
}

}  // namespace

TEMPLATE_TEST_CASE("PackedGemm multiplies every shape of tile, with either kernel", "[linalg][gemm]", float,
                   double) {
  // knead's AVX-512 kernel covers A in panels of 64 rows (the last rounded up to 16, masked) and B in
  // panels of 6 columns (the last narrower): rows and columns on each side of those edges. It reads
  // B packed or as stored; Eigen's reads it packed.
  Rng rng(3);
  std::vector<std::pair<bool, bool>> kernels{{false, true}};  // {own, B packed}
  if (PackedGemm<TestType>::own_kernel_available())
    kernels.insert(kernels.end(), {{true, true}, {true, false}});
  for (const auto& [own, b_packed] : kernels)
    for (const Index rows : {1, 15, 16, 17, 48, 63, 64, 65, 100, 130})
      for (const Index cols : {1, 5, 6, 7, 12, 13, 25})
        for (const auto& [depth, first] :
             std::vector<std::pair<Index, Index>>{{1, 0}, {7, 2}, {64, 0}, {300, 9}})
          for (const bool a_transposed : {false, true})
            for (const bool b_transposed : {false, true})
              for (const Stored stored : {Stored::add, Stored::bias_relu, Stored::gated}) {
                INFO((own ? "knead's kernel" : "Eigen's kernel")
                     << (b_packed ? ", B packed" : ", B as stored") << ", " << rows << "x" << depth
                     << " times " << depth << "x" << cols << " from depth " << first
                     << (a_transposed ? ", A transposed" : "") << (b_transposed ? ", B transposed" : "")
                     << ", stored as " << int(stored));
                check_product<TestType>(own, b_packed, rows, depth, cols, first, a_transposed, b_transposed,
                                        stored, rng);
              }
}

TEST_CASE("knead's AVX-512 kernel gives every entry the same sum however rows and columns are split",
          "[linalg][gemm]") {
  // Each entry is one chain of FMAs over k in order, whichever tile computes it: a product cut in
  // row panels and column ranges equals the whole product bit for bit.
  if (!PackedGemm<float>::own_kernel_available()) {
    WARN("this CPU has no AVX-512F: nothing to check");
    return;
  }
  Rng rng(4);
  const Index rows = 150, depth = 77, cols = 40;
  const Matrix<float> a = test::random_batch<float>(rows, depth, rng);
  const Matrix<float> b = test::random_batch<float>(depth, cols, rng);
  Buffer<float> packed_b(std::size_t(depth * cols));
  PackedGemm<float>::pack_rhs(true, packed_b.data(), b.data(), depth, depth, cols);
  auto product = [&](Index r0, Index r1, Index c0, Index c1, Matrix<float>& c, bool b_packed) {
    Buffer<float> packed_a(std::size_t(PackedGemm<float>::packed_lhs_size(r1 - r0, depth)));
    PackedGemm<float>::pack_lhs(true, packed_a.data(), a.data() + r0, rows, r1 - r0, depth, false);
    const auto rhs = b_packed ? linalg::RhsView<float>::packed(packed_b.data() + c0 * depth, depth)
                              : linalg::RhsView<float>::stored(b.data() + c0 * depth, 1, depth);
    PackedGemm<float>::multiply(true, c.data() + r0 + c0 * rows, rows, packed_a.data(), 0, r1 - r0, depth,
                                rhs, c1 - c0);
  };
  // B read packed or as stored gives the same sums too.
  Matrix<float> whole = Matrix<float>::Zero(rows, cols);
  product(0, rows, 0, cols, whole, true);
  for (const bool b_packed : {true, false}) {
    Matrix<float> parts = Matrix<float>::Zero(rows, cols);
    for (const auto& [r0, r1] : std::vector<std::pair<Index, Index>>{{0, 64}, {64, 80}, {80, 150}})
      for (const auto& [c0, c1] : std::vector<std::pair<Index, Index>>{{0, 12}, {12, 18}, {18, 40}})
        product(r0, r1, c0, c1, parts, b_packed);
    CHECK(whole == parts);
  }
}

TEST_CASE("knead's kernel packs B = Sᵀ in panels of 6 columns", "[linalg][gemm]") {
  // Panel q (columns 6q .. of B, w of them) holds B(k, j) = S(6q + j, k) at k·w + j. Eight panels
  // are packed per pass over S (48 columns), with stores that overrun into the next k: widths on
  // each side of 48 and 96, S stored with spare rows or none, and nothing written past depth · cols.
  // (Eigen's kernel has a layout of its own, checked through the products above.)
  if (!PackedGemm<float>::own_kernel_available()) {
    WARN("this CPU has no AVX-512F: nothing to check");
    return;
  }
  Rng rng(5);
  for (const Index cols : {47, 48, 49, 96, 101})
    for (const Index depth : {1, 2, 7, 33})
      for (const Index spare : {0, 3}) {
        INFO(cols << " columns, depth " << depth << ", leading dimension " << cols + spare);
        const Matrix<float> s = test::random_batch<float>(cols + spare, depth, rng);
        const Index guard = 16;
        Buffer<float> packed(std::size_t(depth * cols + guard), float(-7));
        PackedGemm<float>::pack_rhs(true, packed.data(), s.data(), s.rows(), depth, cols, true);
        const Index nr = PackedGemm<float>::nr(true);
        bool laid_out = true;
        for (Index q0 = 0; q0 < cols; q0 += nr) {
          const Index w = std::min(nr, cols - q0);
          for (Index k = 0; k < depth; ++k)
            for (Index j = 0; j < w; ++j)
              laid_out = laid_out && packed[std::size_t(q0 * depth + k * w + j)] == s(q0 + j, k);
        }
        CHECK(laid_out);
        for (Index i = depth * cols; i < depth * cols + guard; ++i)
          CHECK(packed[std::size_t(i)] == float(-7));
      }
}
