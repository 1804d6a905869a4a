#include "knead/nn/gemm.hpp"

#include <limits>
#include <vector>

#include "support.hpp"

using namespace knead;
using detail::PackedGemm;

namespace {

template <class T>
using Buffer = std::vector<T, Eigen::aligned_allocator<T>>;

/// C += A · B(first .. first + depth, :) through pack_lhs, pack_rhs and multiply_packed of the chosen
/// kernel, with A and B given as stored (transposed or not), against the plain product in double.
template <class T>
void check_product(bool own, Index rows, Index depth, Index cols, Index first, bool a_transposed,
                   bool b_transposed, Rng& rng) {
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
  // C starts non-zero and has a leading dimension larger than its rows: the product is added, and
  // nothing outside C's rows may be touched.
  const Index ldc = rows + 5;
  Matrix<T> c = test::random_batch<T>(ldc, cols, rng);
  const Matrix<T> before = c;
  PackedGemm<T>::multiply_packed(own, c.data(), ldc, packed_a.data(), rows, depth, packed_b.data(),
                                 full_depth, first, cols);
  const Eigen::MatrixXd expected =
      before.topRows(rows).template cast<double>() +
      a.template cast<double>() * b.middleRows(first, depth).template cast<double>();
  // rounding: about one ulp of |c| ≈ √depth per multiply-add, depth of them
  const double tolerance = 4 * double(std::numeric_limits<T>::epsilon()) * double(depth + 4);
  CHECK((c.topRows(rows).template cast<double>() - expected).cwiseAbs().maxCoeff() <= tolerance);
  CHECK(c.bottomRows(ldc - rows) == before.bottomRows(ldc - rows));
}

}  // namespace

TEMPLATE_TEST_CASE("PackedGemm multiplies every shape of tile, with either kernel", "[nn][gemm]", float,
                   double) {
  // knead's AVX-512 kernel covers A in panels of 64 rows (the last rounded up to 16, masked) and B in
  // panels of 6 columns (the last narrower): rows and columns on each side of those edges.
  Rng rng(3);
  std::vector<bool> kernels{false};
  if (PackedGemm<TestType>::own_kernel_available()) kernels.push_back(true);
  for (const bool own : kernels)
    for (const Index rows : {1, 15, 16, 17, 48, 63, 64, 65, 100, 130})
      for (const Index cols : {1, 5, 6, 7, 12, 13, 25})
        for (const auto& [depth, first] :
             std::vector<std::pair<Index, Index>>{{1, 0}, {7, 2}, {64, 0}, {300, 9}})
          for (const bool a_transposed : {false, true})
            for (const bool b_transposed : {false, true}) {
              INFO((own ? "knead's kernel" : "Eigen's kernel")
                   << ", " << rows << "x" << depth << " times " << depth << "x" << cols << " from depth "
                   << first << (a_transposed ? ", A transposed" : "")
                   << (b_transposed ? ", B transposed" : ""));
              check_product<TestType>(own, rows, depth, cols, first, a_transposed, b_transposed, rng);
            }
}

TEST_CASE("knead's AVX-512 kernel gives every entry the same sum however rows and columns are split",
          "[nn][gemm]") {
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
  auto product = [&](Index r0, Index r1, Index c0, Index c1, Matrix<float>& c) {
    Buffer<float> packed_a(std::size_t(PackedGemm<float>::packed_lhs_size(r1 - r0, depth)));
    PackedGemm<float>::pack_lhs(true, packed_a.data(), a.data() + r0, rows, r1 - r0, depth, false);
    PackedGemm<float>::multiply_packed(true, c.data() + r0 + c0 * rows, rows, packed_a.data(), r1 - r0, depth,
                                       packed_b.data() + c0 * depth, depth, 0, c1 - c0);
  };
  Matrix<float> whole = Matrix<float>::Zero(rows, cols), parts = Matrix<float>::Zero(rows, cols);
  product(0, rows, 0, cols, whole);
  for (const auto& [r0, r1] : std::vector<std::pair<Index, Index>>{{0, 64}, {64, 80}, {80, 150}})
    for (const auto& [c0, c1] : std::vector<std::pair<Index, Index>>{{0, 12}, {12, 18}, {18, 40}})
      product(r0, r1, c0, c1, parts);
  CHECK(whole == parts);
}
