#include "knead/linalg/thin_gemm.hpp"

#include <algorithm>
#include <limits>
#include <vector>

#include "support.hpp"

using namespace knead;

namespace {

/// rounding: about one ulp of |c| ≈ √depth per multiply-add, depth of them
double tolerance(Index depth) {
  return 4 * double(std::numeric_limits<float>::epsilon()) * double(depth + 4);
}

bool runs_here() {
  if (linalg::PackedGemm<float>::own_kernel_available()) return true;
  WARN("this CPU has no AVX-512F: the thin products run only on knead's AVX-512 kernel");
  return false;
}

}  // namespace

TEST_CASE("thin_multiply computes a product of a few rows, added, or started with a bias and finished",
          "[linalg][gemm]") {
  if (!runs_here()) return;
  Rng rng(5);
  for (const Index m : {1, 2, 4, 15})
    for (const Index depth : {1, 7, 64, 65})
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
                                  nullptr, store);

            const Eigen::MatrixXd product = a.cast<double>() * x.topRows(depth).cast<double>();
            Eigen::MatrixXd expected = before.topRows(m).cast<double>() + product;
            if (stored == 1) expected = (product.colwise() + bias.cast<double>()).cwiseMax(0.0);
            if (stored == 2) expected = (gate.topRows(m).array() > 0.0f).cast<double>() * product.array();
            CHECK((c.topRows(m).cast<double>() - expected).cwiseAbs().maxCoeff() <= tolerance(depth));
            CHECK(c.bottomRows(ldc - m) == before.bottomRows(ldc - m));  // rows past C's untouched
          }
}

TEST_CASE("thin_weight_gradient adds (G Xᵀ) ⊙ M for a few rows of G", "[linalg][gemm]") {
  if (!runs_here()) return;
  Rng rng(6);
  for (const Index m : {1, 4, 15})
    for (const Index in : {5, 64, 100})  // within one block of 64 rows, one whole, and a block and a part
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
                                       gw.data(), ldgw);

          Eigen::MatrixXd added = g.topRows(m).cast<double>() * x.topRows(in).cast<double>().transpose();
          if (masked) added.array() *= mask.cast<double>().array();
          const Eigen::MatrixXd expected = before.topRows(m).cast<double>() + added;
          CHECK((gw.topRows(m).cast<double>() - expected).cwiseAbs().maxCoeff() <= tolerance(n));
          CHECK(gw.bottomRows(ldgw - m) == before.bottomRows(ldgw - m));
        }
}

TEST_CASE("thin_multiply writes row i of the product into row rows[i] of C", "[linalg][gemm]") {
  if (!runs_here()) return;
  Rng rng(7);
  const Index depth = 33, n = 40, ldc = 6;
  const std::vector<Index> rows{1, 4};  // the other rows of C stay as they were
  const Matrix<float> a = test::random_batch<float>(2, depth, rng),
                      x = test::random_batch<float>(depth, n, rng);
  const Vector<float> bias = test::random_batch<float>(ldc, 1, rng);
  Matrix<float> c = test::random_batch<float>(ldc, n, rng);
  const Matrix<float> before = c;
  linalg::thin_multiply(a.data(), 1, 2, 2, depth, x.data(), depth, n, c.data(), ldc, rows.data(),
                        linalg::Store<float>{true, bias.data(), false, nullptr, 0});
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
  if (!runs_here()) return;
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
      linalg::thin_multiply(a.data(), 1, m, m, depth, x.data(), depth, n, whole.data(), m, nullptr, store);
      for (const auto& [c0, c1] : {std::pair<Index, Index>{0, 3}, {3, 20}, {20, 21}, {21, 45}})
        linalg::thin_multiply(a.data(), 1, m, m, depth, x.data() + c0 * depth, depth, c1 - c0,
                              pieces.data() + c0 * m, m, nullptr, store);
      CHECK(pieces == whole);
    }
}
