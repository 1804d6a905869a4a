#include "knead/linalg/thin_gemm.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "linalg/kernel_paths.hpp"
#include "support.hpp"

using namespace knead;
using linalg::KernelPath;

namespace {

/// rounding: about one ulp of |c| ≈ √depth per multiply-add, depth of them
double tolerance(Index depth) {
  return 4 * double(std::numeric_limits<float>::epsilon()) * double(depth + 4);
}

/// knead's kernel paths this CPU runs, on which the thin products run; {portable} when it runs
/// none of them (runs_here() then says so).
std::vector<KernelPath> thin_paths() {
  std::vector<KernelPath> paths;
  for (const KernelPath p : test::kernel_paths_here())
    if (p != KernelPath::portable) paths.push_back(p);
  if (paths.empty()) paths.push_back(KernelPath::portable);
  return paths;
}

bool runs_here(KernelPath path) {
  if (path != KernelPath::portable) return true;
  WARN("this CPU runs none of knead's own kernels, on which the thin products run");
  return false;
}

}  // namespace

TEST_CASE("thin_multiply computes a product of a few rows, added, or started with a bias and finished",
          "[linalg][gemm]") {
  const KernelPath path = GENERATE(from_range(thin_paths()));
  if (!runs_here(path)) return;
  INFO(linalg::to_string(path) << " path");
  Rng rng(5);
  for (const Index m : {1, 2, 3, 4, 8, 9, 15})
    for (const Index depth : {0, 1, 7, 8, 9, 64, 65})
      for (const Index n : {1, 37, 300})
        for (const bool a_transposed : {false, true})
          for (int stored = 0; stored < 3; ++stored) {
            INFO(m << "x" << depth << " times " << depth << "x" << n
                   << (a_transposed ? ", A stored transposed" : "") << ", stored as " << stored
                   << " (add, bias and ReLU, gate)");
            const Matrix<float> a = test::random_batch<float>(m, depth, rng);
            // A as stored: (i, k) at a[i·row + k·col], column-major or its transpose
            const Matrix<float> a_stored = a_transposed ? Matrix<float>(a.transpose()) : a;
            const Index row = a_transposed ? depth : 1, col = a_transposed ? 1 : m;
            const Index ldx = depth + 3, ldc = m + 2;
            const Matrix<float> x = test::random_batch<float>(ldx, n, rng);
            const Vector<float> bias = test::random_batch<float>(m, 1, rng);
            const Matrix<float> gate = test::random_batch<float>(m + 1, n, rng);
            Matrix<float> c = test::random_batch<float>(ldc, n, rng);
            const Matrix<float> before = c;
            linalg::Store<float> store;
            if (stored == 1) store = {true, bias.data(), true, nullptr, 0};
            if (stored == 2) store = {true, nullptr, false, gate.data(), gate.rows()};
            linalg::thin_multiply(a_stored.data(), row, col, m, depth, x.data(), ldx, n, c.data(), ldc,
                                  nullptr, store, path);

            const Eigen::MatrixXd product = a.cast<double>() * x.topRows(depth).cast<double>();
            Eigen::MatrixXd expected = before.topRows(m).cast<double>() + product;
            if (stored == 1) expected = (product.colwise() + bias.cast<double>()).cwiseMax(0.0);
            if (stored == 2) expected = (gate.topRows(m).array() > 0.0f).cast<double>() * product.array();
            CHECK((c.topRows(m).cast<double>() - expected).cwiseAbs().maxCoeff() <= tolerance(depth));
            CHECK(c.bottomRows(ldc - m) == before.bottomRows(ldc - m));  // rows past C's untouched
          }
}

TEST_CASE("thin_weight_gradient adds (G Xᵀ) ⊙ M for a few rows of G", "[linalg][gemm]") {
  const KernelPath path = GENERATE(from_range(thin_paths()));
  if (!runs_here(path)) return;
  INFO(linalg::to_string(path) << " path");
  Rng rng(6);
  for (const Index m : {1, 2, 3, 4, 5, 15})
    for (const Index in :
         {5, 8, 9, 16, 64, 100})  // within one vector or block of rows, whole ones, and parts
      for (const Index n : {1, 300, 1100})
        for (const bool masked : {false, true}) {
          INFO(m << " rows, " << in << " inputs, " << n << " samples" << (masked ? ", masked" : ""));
          const Index ldg = m + 1, ldx = in + (in % 16 == 0 ? 0 : 3), ldgw = m + 2;
          const Matrix<float> g = test::random_batch<float>(ldg, n, rng);
          const Matrix<float> x = test::random_batch<float>(ldx, n, rng);
          const Matrix<float> mask =
              (test::random_batch<float>(m, in, rng).array() > 0.0f).cast<float>().matrix();
          Matrix<float> gw = test::random_batch<float>(ldgw, in, rng);
          const Matrix<float> before = gw;
          linalg::thin_weight_gradient(g.data(), ldg, m, x.data(), ldx, in, n, masked ? mask.data() : nullptr,
                                       gw.data(), ldgw, path);

          Eigen::MatrixXd added = g.topRows(m).cast<double>() * x.topRows(in).cast<double>().transpose();
          if (masked) added.array() *= mask.cast<double>().array();
          const Eigen::MatrixXd expected = before.topRows(m).cast<double>() + added;
          CHECK((gw.topRows(m).cast<double>() - expected).cwiseAbs().maxCoeff() <= tolerance(n));
          CHECK(gw.bottomRows(ldgw - m) == before.bottomRows(ldgw - m));
        }
}

TEST_CASE("thin_multiply writes row i of the product into row rows[i] of C", "[linalg][gemm]") {
  const KernelPath path = GENERATE(from_range(thin_paths()));
  if (!runs_here(path)) return;
  INFO(linalg::to_string(path) << " path");
  Rng rng(7);
  const Index depth = 33, n = 40, ldc = 6;
  const std::vector<Index> rows{1, 4};  // the other rows of C stay as they were
  const Matrix<float> a = test::random_batch<float>(2, depth, rng),
                      x = test::random_batch<float>(depth, n, rng);
  const Vector<float> bias = test::random_batch<float>(ldc, 1, rng);
  Matrix<float> c = test::random_batch<float>(ldc, n, rng);
  const Matrix<float> before = c;
  linalg::thin_multiply(a.data(), 1, 2, 2, depth, x.data(), depth, n, c.data(), ldc, rows.data(),
                        linalg::Store<float>{true, bias.data(), false, nullptr, 0}, path);
  const Eigen::MatrixXd product = a.cast<double>() * x.cast<double>();
  for (Index r = 0; r < ldc; ++r) {
    INFO("row " << r);
    const auto it = std::find(rows.begin(), rows.end(), r);
    if (it == rows.end()) {
      CHECK(c.row(r) == before.row(r));
    } else {
      const Eigen::RowVectorXd expected = product.row(it - rows.begin()).array() + double(bias(r));
      CHECK((c.row(r).cast<double>() - expected).cwiseAbs().maxCoeff() <= tolerance(depth));
    }
  }
}

TEST_CASE("thin_multiply computes each column the same, bit for bit, whatever columns it is called on",
          "[linalg][gemm]") {
  // threads split a batch at any multiple of 16 columns, and the results must not depend on it
  const KernelPath path = GENERATE(from_range(thin_paths()));
  if (!runs_here(path)) return;
  INFO(linalg::to_string(path) << " path");
  Rng rng(8);
  for (const Index m : {1, 2, 3})
    for (const Index depth : {7, 64, 70}) {
      INFO(m << " rows, depth " << depth);
      const Index n = 45;
      const Matrix<float> a = test::random_batch<float>(m, depth, rng),
                          x = test::random_batch<float>(depth, n, rng);
      const Vector<float> bias = test::random_batch<float>(m, 1, rng);
      const linalg::Store<float> store{true, bias.data(), false, nullptr, 0};
      Matrix<float> whole(m, n), pieces(m, n);
      linalg::thin_multiply(a.data(), 1, m, m, depth, x.data(), depth, n, whole.data(), m, nullptr, store,
                            path);
      for (const auto& [c0, c1] : {std::pair<Index, Index>{0, 3}, {3, 20}, {20, 21}, {21, 45}})
        linalg::thin_multiply(a.data(), 1, m, m, depth, x.data() + c0 * depth, depth, c1 - c0,
                              pieces.data() + c0 * m, m, nullptr, store, path);
      CHECK(pieces == whole);
    }
}

TEST_CASE("The thin products refuse the portable path, whose kernel is Eigen's", "[linalg][gemm][errors]") {
  const Matrix<float> a = Matrix<float>::Ones(2, 3), x = Matrix<float>::Ones(3, 4);
  Matrix<float> c(2, 4);
  CHECK_FALSE(linalg::runs_thin<float>(2, KernelPath::portable));
  CHECK_FALSE(linalg::runs_thin<double>(2, KernelPath::avx2));
  CHECK(linalg::runs_thin<float>(15, KernelPath::avx2));
  CHECK_FALSE(linalg::runs_thin<float>(16, KernelPath::avx2));
  CHECK_THROWS_AS(linalg::thin_multiply(a.data(), 1, 2, 2, 3, x.data(), 3, 4, c.data(), 2, nullptr,
                                        linalg::Store<float>{}, KernelPath::portable),
                  std::logic_error);
  Matrix<float> gw = Matrix<float>::Zero(2, 3);
  CHECK_THROWS_AS(
      linalg::thin_weight_gradient(x.data(), 3, 2, a.data(), 2, 3, 1, static_cast<const float*>(nullptr),
                                   gw.data(), 2, KernelPath::portable),
      std::logic_error);
}
