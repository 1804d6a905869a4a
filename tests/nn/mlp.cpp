#include "knead/nn/mlp.hpp"

#include <algorithm>
#include <stdexcept>

#include "support.hpp"

using namespace knead;

namespace {

/// Parameter gradients and input gradient of one forward + backward of `net` on x, with output
/// gradient g.
template <class T>
std::pair<std::vector<T>, Matrix<T>> gradients(Mlp<T>& net, const Matrix<T>& x, const Matrix<T>& g) {
  Matrix<T> y, gx;
  std::ranges::fill(net.gradients(), T(0));
  net.forward(x, y);
  net.backward(g, &gx);
  return {std::vector<T>(net.gradients().begin(), net.gradients().end()), gx};
}

}  // namespace

TEMPLATE_TEST_CASE("Mlp passes of different networks on one thread do not disturb each other", "[nn][mlp]",
                   float, double) {
  // The buffers of a pass (packed weights, hidden-layer gradients) belong to the thread and are
  // shared by its networks: a network's backward after another network's forward (a flow of
  // several) must give what it gives right after its own forward, bit for bit.
  Rng rng(11);
  Mlp<TestType> a({5, 96, 80, 3}, 1), b({7, 40, 200, 130, 2}, 2);
  const Matrix<TestType> xa = test::random_batch<TestType>(5, 70, rng),
                         ga = test::random_batch<TestType>(3, 70, rng);
  const Matrix<TestType> xb = test::random_batch<TestType>(7, 300, rng),
                         gb = test::random_batch<TestType>(2, 300, rng);
  const auto alone = gradients(a, xa, ga);

  Matrix<TestType> ya, yb, gxa, gxb;
  std::ranges::fill(a.gradients(), TestType(0));
  std::ranges::fill(b.gradients(), TestType(0));
  a.forward(xa, ya);
  b.forward(xb, yb);  // fills the shared buffers with b's packed weights
  b.backward(gb, &gxb);
  a.backward(ga, &gxa);
  CHECK(std::vector<TestType>(a.gradients().begin(), a.gradients().end()) == alone.first);
  CHECK(gxa == alone.second);
}

TEST_CASE("Mlp refuses a pass started from within another pass on the same thread", "[nn][mlp][errors]") {
  Rng rng(12);
  Mlp<double> outer({3, 32, 2}, 1), inner({2, 16, 2}, 2);
  const Matrix<double> x = test::random_batch<double>(3, 40, rng);
  Matrix<double> y, y_inner;
  // a column callback that runs a network would overwrite the buffers the outer pass is reading
  CHECK_THROWS_AS(outer.forward(x, y, [&](Index, Index) { inner.forward(y.topRows(2), y_inner); }),
                  std::logic_error);
  CHECK_THROWS_WITH(outer.forward(x, y, [&](Index, Index) { inner.forward(y.topRows(2), y_inner); }),
                    Catch::Contains("Mlp::forward") && Catch::Contains("within another network's pass"));
  // the refusal leaves the thread's buffers free
  CHECK_NOTHROW(inner.forward(x.topRows(2), y_inner));
  CHECK_NOTHROW(outer.forward(x, y));
}

TEST_CASE("Mlp stays usable when growing its activations for a batch fails", "[nn][mlp][errors]") {
  // A hidden layer of 2^16 units on 2^22 columns needs 2^40 bytes for its activations: the
  // allocation fails (more than the machine has), after a small pass sized the buffers. The
  // network must keep valid buffers (no freed pointer left behind, freed again by the destructor)
  // and compute what it computed before.
  Mlp<float> net({1, Index(1) << 16, 1}, 7);
  const Matrix<float> small = Matrix<float>::Constant(1, 3, 0.5f);
  Matrix<float> before, after;
  net.forward(small, before);
  {
    const Matrix<float> huge = Matrix<float>::Zero(1, Index(1) << 22);
    Matrix<float> y;
    CHECK_THROWS_AS(net.forward(huge, y), std::bad_alloc);
  }
  net.forward(small, after);
  CHECK(after == before);
}
