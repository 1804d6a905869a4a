#include "knead/linalg/masked_linear.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "knead/nn/made.hpp"
#include "linalg/kernel_paths.hpp"
#include "linalg/mask_examples.hpp"
#include "support.hpp"

using namespace knead;
using linalg::KernelPath;
using linalg::MaskBlock;
using linalg::MaskedLinearPlan;

namespace {

/// The three kernels of a plan against dense (W⊙M) products, with large values in W's masked-out
/// entries that must have no effect.
template <class T>
void check_kernels(const Matrix<T>& mask, Rng& rng, Index n = 37) {
  const Index out = mask.rows(), in = mask.cols();
  const MaskedLinearPlan plan(mask);
  Matrix<T> w = test::random_batch<T>(out, in, rng);
  for (Index c = 0; c < in; ++c)
    for (Index r = 0; r < out; ++r)
      if (mask(r, c) == T(0)) w(r, c) = T(1e6);
  const Matrix<T> wm = w.cwiseProduct(mask);
  const Vector<T> bias = test::random_batch<T>(out, 1, rng);
  const Matrix<T> x = test::random_batch<T>(in, n, rng), g = test::random_batch<T>(out, n, rng);
  const T tolerance = std::is_same_v<T, float> ? T(1e-4) : T(1e-12);
  auto scaled_error = [](const Matrix<T>& a, const Matrix<T>& b) {
    return (a - b).cwiseAbs().maxCoeff() / std::max(T(1), b.cwiseAbs().maxCoeff());
  };

  for (const bool relu : {false, true}) {
    Matrix<T> y(out, n);
    plan.forward(w.data(), out, bias.data(), mask.data(), x.data(), in, y.data(), out, n, relu);
    Matrix<T> expected = (wm * x).colwise() + bias;
    if (relu) expected = expected.cwiseMax(T(0));
    CHECK(scaled_error(y, expected) < tolerance);
  }

  Matrix<T> gx(in, n);
  plan.backward_input(w.data(), out, mask.data(), g.data(), out, gx.data(), in, n);
  CHECK(scaled_error(gx, wm.transpose() * g) < tolerance);

  // backward_weight adds into what the gradient already holds
  const Matrix<T> before = test::random_batch<T>(out, in, rng);
  Matrix<T> gw = before;
  plan.backward_weight(mask.data(), g.data(), out, x.data(), in, n, gw.data(), out);
  CHECK(scaled_error(gw, before + (g * x.transpose()).cwiseProduct(mask)) < tolerance);
}

}  // namespace

TEMPLATE_TEST_CASE("MaskedLinearPlan's layouts are the covers of its mask and of the transpose",
                   "[linalg][masked_linear]", float, double) {
  Rng rng(11);
  std::vector<Matrix<TestType>> masks = test::made_masks<TestType>();
  masks.push_back(test::random_mask<TestType>(40, 30, 0.5, rng));
  for (const auto& mask : masks) {
    INFO("mask " << mask.rows() << "x" << mask.cols());
    const MaskedLinearPlan plan(mask);
    const Matrix<Index> ones = (mask.array() != TestType(0)).template cast<Index>();
    CHECK(plan.by_rows() == linalg::cover_mask(ones));
    CHECK(plan.by_cols() == linalg::cover_mask(ones.transpose()));
    Index area = 0;
    for (const MaskBlock& b : plan.by_rows()) area += b.rows * b.cols;
    CHECK(plan.computed_macs() == area);
  }
  const MaskedLinearPlan dense(6, 5);
  REQUIRE(dense.by_rows().size() == 1);
  CHECK(dense.computed_macs() == 30);
}

TEMPLATE_TEST_CASE("MaskedLinearPlan kernels match the dense products with W ⊙ M", "[linalg][masked_linear]",
                   float, double) {
  const KernelPath path = GENERATE(from_range(test::kernel_paths_here()));
  const test::KernelPathScope on_path(path);
  INFO(linalg::to_string(path) << " path");
  Rng rng(5);
  std::vector<Matrix<TestType>> masks = test::made_masks<TestType>();
  masks.push_back(test::random_mask<TestType>(40, 30, 0.5, rng));
  masks.push_back(Matrix<TestType>::Zero(9, 4));
  for (const auto& mask : masks) {
    INFO("mask " << mask.rows() << "x" << mask.cols());
    check_kernels(mask, rng);
  }
}

TEMPLATE_TEST_CASE("MaskedLinearPlan's weight gradient in shares is the whole one bit for bit",
                   "[linalg][masked_linear]", float, double) {
  const KernelPath path = GENERATE(from_range(test::kernel_paths_here()));
  const test::KernelPathScope on_path(path);
  INFO(linalg::to_string(path) << " path");
  // Uneven shares, as threads of different speeds get: every entry is summed by one share, and the
  // cuts fall on the kernel's row panels, so the sums must not change in the last bit. 300 columns
  // make two slices of the batch for the 512-input layer.
  Rng rng(9);
  const std::vector<std::vector<double>> splits{{0, 0.3, 0.55, 1}, {0, 0.5, 1}, {0, 0.71, 1}, {0, 0.02, 1}};
  for (const auto& [dim, hidden] : std::vector<std::pair<Index, Index>>{{5, 40}, {64, 512}}) {
    Made<TestType> made(dim, {hidden, hidden}, InputOrder::reversed(), 3);
    for (const auto& mask : made.mlp().masks()) {
      const MaskedLinearPlan plan(mask);
      const Index out = mask.rows(), in = mask.cols(), n = dim == 5 ? 21 : 300;
      const Matrix<TestType> x = test::random_batch<TestType>(in, n, rng),
                             g = test::random_batch<TestType>(out, n, rng);
      Matrix<TestType> whole = Matrix<TestType>::Zero(out, in);
      plan.backward_weight(mask.data(), g.data(), out, x.data(), in, n, whole.data(), out);
      for (const auto& cuts : splits) {
        INFO("mask " << out << "x" << in << ", " << cuts.size() - 1 << " shares, first cut " << cuts[1]);
        // packing the batch itself, or reading it packed in shares by pack_inputs()
        std::vector<TestType, Eigen::aligned_allocator<TestType>> packed(
            std::size_t(plan.template packed_inputs_size<TestType>(n)));
        for (std::size_t k = 0; k + 1 < cuts.size(); ++k)
          plan.pack_inputs(x.data(), in, n, packed.data(), {cuts[k], cuts[k + 1]});
        Matrix<TestType> own = Matrix<TestType>::Zero(out, in), shared = own;
        for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
          const detail::Share share{cuts[k], cuts[k + 1]};
          plan.backward_weight(mask.data(), g.data(), out, x.data(), in, n, own.data(), out, share);
          plan.backward_weight(mask.data(), g.data(), out, x.data(), in, n, shared.data(), out, share,
                               packed.data());
        }
        CHECK((own.array() == whole.array()).all());
        CHECK((shared.array() == whole.array()).all());
      }
    }
  }
}

TEMPLATE_TEST_CASE("MaskedLinearPlan kernels slice batches wider than the cache", "[linalg][masked_linear]",
                   float, double) {
  const KernelPath path = GENERATE(from_range(test::kernel_paths_here()));
  const test::KernelPathScope on_path(path);
  INFO(linalg::to_string(path) << " path");
  // 600 columns: the batch is packed in slices of 256 columns (512 inputs) or 512 (64 inputs)
  Rng rng(6);
  Made<TestType> made(64, {512, 512}, InputOrder::reversed(), 2);
  for (const auto& mask : made.mlp().masks()) {
    INFO("mask " << mask.rows() << "x" << mask.cols());
    check_kernels(mask, rng, 600);
  }
}

TEMPLATE_TEST_CASE("MaskedLinearPlan computes a column alike wherever a call's columns start",
                   "[linalg][masked_linear]", float, double) {
  const KernelPath path = GENERATE(from_range(test::kernel_paths_here()));
  const test::KernelPathScope on_path(path);
  INFO(linalg::to_string(path) << " path");
  // A thread's call starts at a multiple of linalg::column_align columns and cuts the batch into
  // slices from there; the products must not depend on where the slices fall (768 inputs: slices
  // of 168 columns, where 131072 / 768 = 170 would leave two columns of a slice to a kernel path
  // that sums in another order).
  Rng rng(31);
  for (const auto& [out, in] :
       std::vector<std::pair<Index, Index>>{{24, 768}, {5, 768}, {3, 1000}, {768, 5}}) {
    const MaskedLinearPlan plan(out, in);
    const Index n = 400, cut = 11 * linalg::column_align;
    const Matrix<TestType> w = test::random_batch<TestType>(out, in, rng);
    const Vector<TestType> bias = test::random_batch<TestType>(out, 1, rng);
    const Matrix<TestType> x = test::random_batch<TestType>(in, n, rng),
                           g = test::random_batch<TestType>(out, n, rng);
    INFO("layer " << out << "x" << in);
    Matrix<TestType> whole(out, n), parts(out, n), gx_whole(in, n), gx_parts(in, n);
    plan.forward(w.data(), out, bias.data(), static_cast<const TestType*>(nullptr), x.data(), in,
                 whole.data(), out, n, false);
    plan.forward(w.data(), out, bias.data(), static_cast<const TestType*>(nullptr), x.data(), in,
                 parts.data(), out, cut, false);
    plan.forward(w.data(), out, bias.data(), static_cast<const TestType*>(nullptr), x.data() + cut * in, in,
                 parts.data() + cut * out, out, n - cut, false);
    CHECK((whole.array() == parts.array()).all());
    plan.backward_input(w.data(), out, static_cast<const TestType*>(nullptr), g.data(), out, gx_whole.data(),
                        in, n);
    plan.backward_input(w.data(), out, static_cast<const TestType*>(nullptr), g.data(), out, gx_parts.data(),
                        in, cut);
    plan.backward_input(w.data(), out, static_cast<const TestType*>(nullptr), g.data() + cut * out, out,
                        gx_parts.data() + cut * in, in, n - cut);
    CHECK((gx_whole.array() == gx_parts.array()).all());
  }
}

TEMPLATE_TEST_CASE("MaskedLinearPlan packs the same weights whole or in parts", "[linalg][masked_linear]",
                   float, double) {
  const KernelPath path = GENERATE(from_range(test::kernel_paths_here()));
  const test::KernelPathScope on_path(path);
  INFO(linalg::to_string(path) << " path");
  Rng rng(8);
  Made<TestType> made(64, {512, 512}, InputOrder::identity(), 4);
  for (const auto& mask : made.mlp().masks()) {
    const MaskedLinearPlan plan(mask);
    const Matrix<TestType> w = test::random_batch<TestType>(mask.rows(), mask.cols(), rng);
    for (const bool transposed : {false, true}) {
      INFO("mask " << mask.rows() << "x" << mask.cols() << (transposed ? ", transposed" : ""));
      const auto size = std::size_t(plan.packed_size(transposed));
      std::vector<TestType, Eigen::aligned_allocator<TestType>> whole(size, TestType(0)),
          parts(size, TestType(0));
      plan.pack_weights(w.data(), w.rows(), mask.data(), transposed, whole.data());
      for (const auto& share : {detail::Share{0, 0.2}, detail::Share{0.2, 0.65}, detail::Share{0.65, 1}})
        plan.pack_weights(w.data(), w.rows(), mask.data(), transposed, parts.data(), share);
      CHECK(whole == parts);
      // every block packed: as many non-zero entries as W⊙M has
      const auto nonzero =
          std::count_if(whole.begin(), whole.end(), [](TestType v) { return v != TestType(0); });
      CHECK(Index(nonzero) == Index((w.array() * mask.array() != TestType(0)).count()));
    }
  }
}

TEMPLATE_TEST_CASE("MaskedLinearPlan shares the packing of one large block between threads",
                   "[linalg][masked_linear]", float, double) {
  const KernelPath path = GENERATE(from_range(test::kernel_paths_here()));
  const test::KernelPathScope on_path(path);
  INFO(linalg::to_string(path) << " path");
  // An unmasked layer is a single block: the shares cut it by row panels, about in proportion.
  Rng rng(9);
  for (const auto& [out, in] : std::vector<std::pair<Index, Index>>{{512, 512}, {130, 70}, {4, 64}}) {
    const MaskedLinearPlan plan(out, in);
    const Matrix<TestType> w = test::random_batch<TestType>(out, in, rng);
    for (const bool transposed : {false, true}) {
      INFO(out << "x" << in << (transposed ? ", transposed" : ""));
      const auto size = std::size_t(plan.packed_size(transposed));
      std::vector<TestType, Eigen::aligned_allocator<TestType>> whole(size, TestType(0)),
          parts(size, TestType(0)), half(size, TestType(0));
      plan.pack_weights(w.data(), out, static_cast<const TestType*>(nullptr), transposed, whole.data());
      for (const auto& share : {detail::Share{0, 0.3}, detail::Share{0.3, 0.5}, detail::Share{0.5, 1}})
        plan.pack_weights(w.data(), out, static_cast<const TestType*>(nullptr), transposed, parts.data(),
                          share);
      CHECK(whole == parts);
      plan.pack_weights(w.data(), out, static_cast<const TestType*>(nullptr), transposed, half.data(),
                        detail::Share{0, 0.5});
      const double packed_by_first =
          double(std::count_if(half.begin(), half.end(), [](TestType v) { return v != TestType(0); })) /
          double(w.size());
      // whole row panels (64 rows in knead's kernels, 48 or fewer in Eigen's): within one panel of half
      const double panel =
          double(linalg::PackedGemm<TestType>::mr(plan.template kernel<TestType>(transposed))) /
          double(transposed ? in : out);
      CHECK(packed_by_first >= 0.5 - panel);
      CHECK(packed_by_first <= 0.5 + panel);
    }
  }
}

TEMPLATE_TEST_CASE("MaskedLinearPlan computes chosen rows from the first inputs, and the bias gradient",
                   "[linalg][masked_linear]", float, double) {
  const KernelPath path = GENERATE(from_range(test::kernel_paths_here()));
  const test::KernelPathScope on_path(path);
  INFO(linalg::to_string(path) << " path");
  // forward_rows: rows `rows` of (W⊙M) x + b (ReLU'd or not) from the first `input_cols` inputs, into
  // those rows of y only, against the dense product with the other inputs cut off; few rows (the
  // dot-product path on knead's kernel paths) and many. backward_bias: Σ_j g(:, j), the same summed whole or
  // by shares of the rows.
  using T = TestType;
  Rng rng(17);
  const T tolerance = std::is_same_v<T, float> ? T(1e-4) : T(1e-12);
  const Index n = 45;
  for (const Matrix<T>& mask : {test::random_mask<T>(40, 30, 0.6, rng), Matrix<T>(Matrix<T>::Ones(24, 9))}) {
    const Index out = mask.rows(), in = mask.cols();
    const MaskedLinearPlan plan(mask);
    Matrix<T> w = test::random_batch<T>(out, in, rng);
    for (Index c = 0; c < in; ++c)
      for (Index r = 0; r < out; ++r)
        if (mask(r, c) == T(0)) w(r, c) = T(1e6);  // must have no effect
    const Vector<T> bias = test::random_batch<T>(out, 1, rng);
    const Matrix<T> x = test::random_batch<T>(in, n, rng);
    for (const std::vector<Index>& rows :
         {std::vector<Index>{3, 7},
          std::vector<Index>{0, 1, 2, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23}}) {
      for (const Index input_cols : {Index(1), in / 2, in}) {
        for (const bool relu : {false, true}) {
          INFO(out << "x" << in << " layer, " << rows.size() << " rows, " << input_cols << " inputs, relu "
                   << relu);
          const Matrix<T> before = test::random_batch<T>(out, n, rng);
          Matrix<T> y = before;
          plan.forward_rows(w.data(), out, bias.data(), mask.data(), std::span<const Index>(rows), input_cols,
                            x.data(), in, y.data(), out, n, relu);
          const Matrix<T> z =
              (w.cwiseProduct(mask).leftCols(input_cols) * x.topRows(input_cols)).colwise() + bias;
          Matrix<T> expected = before;
          const Matrix<T> finished = relu ? Matrix<T>(z.cwiseMax(T(0))) : z;
          for (const Index r : rows) expected.row(r) = finished.row(r);
          CHECK((y - expected).cwiseAbs().maxCoeff() < tolerance * std::max(T(1), z.cwiseAbs().maxCoeff()));
        }
      }
    }
    const Matrix<T> g = test::random_batch<T>(out, n, rng);
    const Vector<T> start = test::random_batch<T>(out, 1, rng);
    Vector<T> whole = start, parts = start;
    plan.backward_bias(g.data(), out, n, whole.data());
    for (const auto& share : {detail::Share{0, 0.3}, detail::Share{0.3, 0.7}, detail::Share{0.7, 1}})
      plan.backward_bias(g.data(), out, n, parts.data(), share);
    CHECK(whole == parts);
    CHECK((whole - start - g.rowwise().sum()).cwiseAbs().maxCoeff() < tolerance * T(n));
  }
}

TEST_CASE("A MADE computes the same on each kernel path, across thread counts and path switches",
          "[linalg][masked_linear]") {
  // Each pass packs the weights (and batches) it reads for the path then in force: a switch between
  // passes, even between a forward pass and its backward pass, computes what the new path computes
  // (to rounding: the backward pass reads the activations the forward one computed). On one path, 1
  // and 2 threads give the same bits. (D = 2: its output layer and its input gradients are thin
  // products; D = 64: blocks of 16 rows or more.)
  Rng rng(23);
  const std::vector<KernelPath> paths = test::kernel_paths_here();
  auto close = [](const auto& a, const auto& b) {
    const auto va = Eigen::Map<const Vector<float>>(a.data(), Index(a.size()));
    const auto vb = Eigen::Map<const Vector<float>>(b.data(), Index(b.size()));
    return (va - vb).cwiseAbs().maxCoeff() <= 1e-4f * std::max(1.0f, vb.cwiseAbs().maxCoeff());
  };
  for (const Index dim : {2, 64}) {
    Made<float> made(dim, {64, 64}, InputOrder::reversed(), 2);
    const Matrix<float> x = test::random_batch<float>(dim, 300, rng);
    const Matrix<float> g = test::random_batch<float>(2 * dim, 300, rng);
    // output, input gradient and parameter gradient of one forward and backward pass: the forward
    // on path `forward`, the backward on `backward`, on `threads` threads
    auto pass = [&](KernelPath forward, KernelPath backward, int threads) {
      const test::ThreadCount count(threads);
      Matrix<float> y, gx;
      std::ranges::fill(made.mlp().gradients(), 0.0f);
      {
        const test::KernelPathScope on_path(forward);
        made.mlp().forward(x, y);
      }
      const test::KernelPathScope on_path(backward);
      made.mlp().backward(g, &gx);
      return std::tuple{y, gx,
                        std::vector<float>(made.mlp().gradients().begin(), made.mlp().gradients().end())};
    };
    for (const KernelPath p : paths) {
      INFO("D = " << dim << ", " << linalg::to_string(p) << " path");
      const auto [y, gx, gp] = pass(p, p, 1);
      const auto [y2, gx2, gp2] = pass(p, p, 2);
      CHECK(y == y2);
      CHECK(gx == gx2);
      CHECK(gp == gp2);
      for (const KernelPath q : paths) {
        INFO("forward on " << linalg::to_string(p) << ", backward on " << linalg::to_string(q));
        const auto [yq, gxq, gpq] = pass(q, q, 1);
        const auto [ys, gxs, gps] = pass(p, q, 1);  // switched between the passes
        CHECK(ys == y);
        // the paths agree to rounding, and the switched pass with them
        CHECK(close(yq, y));
        CHECK(close(gxs, gxq));
        CHECK(close(gx, gxq));
        CHECK(close(gps, gpq));
        CHECK(close(gp, gpq));
      }
    }
  }
}
