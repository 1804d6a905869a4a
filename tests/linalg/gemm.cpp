#include "knead/linalg/gemm.hpp"

#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "linalg/kernel_paths.hpp"
#include "support.hpp"

using namespace knead;
using linalg::KernelPath;
using linalg::PackedGemm;

namespace {

template <class T>
using Buffer = std::vector<T, Eigen::aligned_allocator<T>>;

/// How check_product() stores the product: C += A·B; C = max(A·B + bias, 0); C = A·B where a gate
/// is positive, else 0.
enum class Stored { add, bias_relu, gated };

/// C (+)= A · B(first .. first + depth, :) through pack_lhs and the chosen kernel, with B packed by
/// pack_rhs or (knead's kernels) read as stored, and so A where the kernel can, A and B given as
/// stored (transposed or not), against the plain product in double.
template <class T>
void check_product(KernelPath kernel, bool b_packed, Index rows, Index depth, Index cols, Index first,
                   bool a_transposed, bool b_transposed, Stored stored, Rng& rng) {
  const Index full_depth = first + depth + 3;
  const Matrix<T> a = test::random_batch<T>(rows, depth, rng);       // A
  const Matrix<T> b = test::random_batch<T>(full_depth, cols, rng);  // B, all of its depth
  const Matrix<T> a_stored = a_transposed ? Matrix<T>(a.transpose()) : a;
  const Matrix<T> b_stored = b_transposed ? Matrix<T>(b.transpose()) : b;
  Buffer<T> packed_a(std::size_t(PackedGemm<T>::packed_lhs_size(rows, depth)), T(0));
  Buffer<T> packed_b(std::size_t(full_depth * cols), T(0));
  PackedGemm<T>::pack_lhs(kernel, packed_a.data(), a_stored.data(), a_stored.rows(), rows, depth,
                          a_transposed);
  PackedGemm<T>::pack_rhs(kernel, packed_b.data(), b_stored.data(), b_stored.rows(), full_depth, cols,
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
  // knead's kernels with B as stored also read A as stored where they can (whole 16-row vectors)
  const bool a_as_stored =
      PackedGemm<T>::knead_kernel(kernel) && !b_packed && !a_transposed && rows % 16 == 0;
  PackedGemm<T>::multiply(kernel, c.data(), ldc, a_as_stored ? a_stored.data() : packed_a.data(),
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

TEMPLATE_TEST_CASE("PackedGemm multiplies every shape of tile, on every kernel path this CPU runs",
                   "[linalg][gemm]", float, double) {
  // knead's kernels cover A in panels of 64 rows (the last rounded up to 16, masked; the AVX2 kernel
  // computes 16 rows at a time, the last 8 or fewer in one vector) and B in panels of 6 columns (the
  // last narrower): rows and columns on each side of those edges, and depth 0 (C only started and
  // finished). They read B packed or as stored; Eigen's kernel (portable, and double on every path)
  // reads it packed.
  Rng rng(3);
  const KernelPath path = GENERATE(from_range(test::kernel_paths_here()));
  const KernelPath kernel = PackedGemm<TestType>::kernel(path);
  std::vector<bool> b_layouts{true};  // B packed
  if (PackedGemm<TestType>::knead_kernel(kernel)) b_layouts.push_back(false);
  for (const bool b_packed : b_layouts)
    for (const Index rows : {1, 7, 8, 9, 15, 16, 17, 24, 48, 63, 64, 65, 70, 100, 130})
      for (const Index cols : {1, 5, 6, 7, 12, 13, 25})
        for (const auto& [depth, first] :
             std::vector<std::pair<Index, Index>>{{0, 1}, {1, 0}, {7, 2}, {64, 0}, {300, 9}})
          for (const bool a_transposed : {false, true})
            for (const bool b_transposed : {false, true})
              for (const Stored stored : {Stored::add, Stored::bias_relu, Stored::gated}) {
                INFO(linalg::to_string(kernel)
                     << " kernel" << (b_packed ? ", B packed" : ", B as stored") << ", " << rows << "x"
                     << depth << " times " << depth << "x" << cols << " from depth " << first
                     << (a_transposed ? ", A transposed" : "") << (b_transposed ? ", B transposed" : "")
                     << ", stored as " << int(stored));
                check_product<TestType>(kernel, b_packed, rows, depth, cols, first, a_transposed,
                                        b_transposed, stored, rng);
              }
}

namespace {

/// knead's kernel paths this CPU runs (none: a warning).
std::vector<KernelPath> knead_paths_here() {
  std::vector<KernelPath> paths;
  for (const KernelPath p : test::kernel_paths_here())
    if (p != KernelPath::portable) paths.push_back(p);
  if (paths.empty()) WARN("this CPU runs none of knead's own kernels: nothing to check");
  return paths;
}

}  // namespace

TEST_CASE("knead's kernels give every entry the same sum however rows and columns are split",
          "[linalg][gemm]") {
  // Each entry is one chain of FMAs over k in order, whichever tile computes it: a product cut in
  // row panels and column ranges equals the whole product bit for bit; and the AVX-512 and AVX2
  // kernels compute the same chains.
  Rng rng(4);
  const Index rows = 150, depth = 77, cols = 40;
  const Matrix<float> a = test::random_batch<float>(rows, depth, rng);
  const Matrix<float> b = test::random_batch<float>(depth, cols, rng);
  std::vector<Matrix<float>> by_path;
  for (const KernelPath kernel : knead_paths_here()) {
    INFO(linalg::to_string(kernel) << " kernel");
    Buffer<float> packed_b(std::size_t(depth * cols));
    PackedGemm<float>::pack_rhs(kernel, packed_b.data(), b.data(), depth, depth, cols);
    auto product = [&](Index r0, Index r1, Index c0, Index c1, Matrix<float>& c, bool b_packed) {
      Buffer<float> packed_a(std::size_t(PackedGemm<float>::packed_lhs_size(r1 - r0, depth)));
      PackedGemm<float>::pack_lhs(kernel, packed_a.data(), a.data() + r0, rows, r1 - r0, depth, false);
      const auto rhs = b_packed ? linalg::RhsView<float>::packed(packed_b.data() + c0 * depth, depth)
                                : linalg::RhsView<float>::stored(b.data() + c0 * depth, 1, depth);
      PackedGemm<float>::multiply(kernel, c.data() + r0 + c0 * rows, rows, packed_a.data(), 0, r1 - r0, depth,
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
    by_path.push_back(whole);
  }
  for (std::size_t i = 1; i < by_path.size(); ++i) CHECK(by_path[i] == by_path[0]);
}

TEST_CASE("knead's kernels pack B = Sᵀ in panels of 6 columns", "[linalg][gemm]") {
  // Panel q (columns 6q .. of B, w of them) holds B(k, j) = S(6q + j, k) at k·w + j. Eight panels
  // are packed per pass over S (48 columns), with stores that overrun into the next k: widths on
  // each side of 48 and 96, S stored with spare rows or none, and nothing written past depth · cols.
  // (Eigen's kernel has a layout of its own, checked through the products above.)
  Rng rng(5);
  for (const KernelPath kernel : knead_paths_here())
    for (const Index cols : {47, 48, 49, 96, 101})
      for (const Index depth : {1, 2, 7, 33})
        for (const Index spare : {0, 3}) {
          INFO(linalg::to_string(kernel) << " kernel, " << cols << " columns, depth " << depth
                                         << ", leading dimension " << cols + spare);
          const Matrix<float> s = test::random_batch<float>(cols + spare, depth, rng);
          const Index guard = 16;
          Buffer<float> packed(std::size_t(depth * cols + guard), float(-7));
          PackedGemm<float>::pack_rhs(kernel, packed.data(), s.data(), s.rows(), depth, cols, true);
          const Index nr = PackedGemm<float>::nr(kernel);
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

TEST_CASE("pack_lhs with a mask packs what it packs from a masked copy, bit for bit", "[linalg][gemm]") {
  // where the kernel applies masks while packing (packs_masked): against pack_lhs of W ⊙ M formed
  // apart, with masked-out entries that are NaN, infinite or huge, and rows that end partway through
  // a 16-row sub-panel
  for (const KernelPath kernel : test::kernel_paths_here()) {
    if (!PackedGemm<float>::packs_masked(kernel)) continue;
    INFO(linalg::to_string(kernel) << " path");
    Rng rng(17);
    std::bernoulli_distribution keep(0.6);
    const float odd[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                         1e30f, -0.0f};
    for (const bool transposed : {false, true})
      for (const Index rows : {16, 21, 64, 70, 131})
        for (const Index depth : {1, 5, 33}) {
          INFO((transposed ? "transposed " : "") << rows << " x " << depth);
          // stored S: rows × depth (A = S), or depth × rows (A = Sᵀ); leading dimensions larger
          const Index s_rows = transposed ? depth : rows, s_cols = transposed ? rows : depth;
          const Index ld = s_rows + 3, ldm = s_rows + 7;
          Matrix<float> s = test::random_batch<float>(ld, s_cols, rng),
                        mask = Matrix<float>::Zero(ldm, s_cols);
          Matrix<float> masked = Matrix<float>::Zero(s_rows, s_cols);
          for (Index c = 0; c < s_cols; ++c)
            for (Index r = 0; r < s_rows; ++r) {
              mask(r, c) = keep(rng) ? 1.0f : 0.0f;
              if (mask(r, c) == 0.0f) s(r, c) = odd[std::size_t(r + c) % 4];
              masked(r, c) = mask(r, c) != 0.0f ? s(r, c) : 0.0f;
            }
          const std::size_t size = std::size_t(PackedGemm<float>::packed_lhs_size(rows, depth));
          Buffer<float> direct(size, 7.0f), from_copy(size, 7.0f);
          PackedGemm<float>::pack_lhs(kernel, direct.data(), s.data(), ld, rows, depth, transposed,
                                      mask.data(), ldm);
          PackedGemm<float>::pack_lhs(kernel, from_copy.data(), masked.data(), s_rows, rows, depth,
                                      transposed);
          CHECK(std::memcmp(direct.data(), from_copy.data(), size * sizeof(float)) == 0);
        }
  }
  // a kernel that does not apply masks refuses one rather than ignoring it
  float one = 1.0f, packed[16 * 1];
  CHECK_THROWS_WITH(PackedGemm<float>::pack_lhs(KernelPath::portable, packed, &one, 1, 1, 1, false, &one, 1),
                    Catch::Contains("PackedGemm::pack_lhs") && Catch::Contains("mask"));
}
