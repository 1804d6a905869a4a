#include "knead/nn/made.hpp"

#include <algorithm>
#include <type_traits>

#include "support.hpp"

using namespace knead;

namespace {

struct Config {
  Index dim;
  std::vector<Index> hidden;
  InputOrder order;
  std::string label;
};

/// Every dimension, order and kind of hidden stack the tests use.
std::vector<Config> configs() {
  std::vector<Config> out;
  for (const Index d : {1, 2, 3, 7}) {
    const Index few = std::max<Index>(d - 1, 1);
    const std::vector<std::pair<InputOrder, std::string>> orders = {
        {InputOrder::identity(), "identity"},
        {InputOrder::reversed(), "reversed"},
        {InputOrder::permutation(test::custom_order(d)), "custom"}};
    for (const auto& [order, name] : orders) {
      out.push_back({d, {3 * few + 1, 2 * few + 1}, order, name + ", two hidden layers"});
      out.push_back({d, {few}, order, name + ", one minimal hidden layer"});
      out.push_back({d, {}, order, name + ", no hidden layer"});
    }
  }
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("MADE degrees follow the order and hidden degrees are sorted and complete", "[nn][made]",
                   float, double) {
  for (const auto& c : configs()) {
    CAPTURE(c.dim, c.label);
    Made<TestType> made(c.dim, c.hidden, c.order, 1);
    const auto& order = made.order();
    REQUIRE(Index(order.size()) == c.dim);
    for (Index k = 0; k < c.dim; ++k)
      CHECK(made.input_degrees()[std::size_t(order[std::size_t(k)])] == k + 1);
    for (Index i = 0; i < c.dim; ++i) {
      CHECK(made.output_degrees()[std::size_t(i)] == made.input_degrees()[std::size_t(i)]);
      CHECK(made.output_degrees()[std::size_t(c.dim + i)] == made.input_degrees()[std::size_t(i)]);
    }
    REQUIRE(made.hidden_degrees().size() == c.hidden.size());
    for (const auto& layer : made.hidden_degrees()) {
      CHECK(std::ranges::is_sorted(layer));
      if (c.dim == 1) {
        CHECK(std::ranges::all_of(layer, [](Index m) { return m == 0; }));
      } else {
        for (Index k = 1; k < c.dim; ++k) CHECK(std::ranges::count(layer, k) >= 1);
        CHECK(std::ranges::all_of(layer, [&](Index m) { return m >= 1 && m <= c.dim - 1; }));
      }
    }
  }
}

TEMPLATE_TEST_CASE("MADE masks follow the degree rules, are staircases and leave no unit dead", "[nn][made]",
                   float, double) {
  for (const auto& c : configs()) {
    CAPTURE(c.dim, c.label);
    Made<TestType> made(c.dim, c.hidden, c.order, 2);
    const auto& masks = made.mlp().masks();
    REQUIRE(masks.size() == c.hidden.size() + 1);
    std::vector<std::vector<Index>> degrees{made.input_degrees()};
    for (const auto& layer : made.hidden_degrees()) degrees.push_back(layer);
    degrees.push_back(made.output_degrees());
    bool rule_ok = true, staircase_ok = true;
    for (std::size_t l = 0; l < masks.size(); ++l) {
      const bool to_output = l + 1 == masks.size();
      const auto& m = masks[l];
      REQUIRE(m.rows() == Index(degrees[l + 1].size()));
      REQUIRE(m.cols() == Index(degrees[l].size()));
      for (Index r = 0; r < m.rows(); ++r)
        for (Index col = 0; col < m.cols(); ++col) {
          const Index out = degrees[l + 1][std::size_t(r)], in = degrees[l][std::size_t(col)];
          rule_ok = rule_ok && m(r, col) == ((to_output ? out > in : out >= in) ? 1 : 0);
          // sorted hidden degrees: each unit's inputs contain those of the unit before it
          if (!to_output && r > 0) staircase_ok = staircase_ok && m(r - 1, col) <= m(r, col);
        }
    }
    CHECK(rule_ok);
    CHECK(staircase_ok);
    // no dead hidden unit: each has an input (a row of the mask into it) and an output (a column
    // of the mask out of it); for D = 1 the units have degree 0 and see no input by design
    for (std::size_t l = 0; l < c.hidden.size(); ++l) {
      CAPTURE(l);
      if (c.dim >= 2 || l > 0)
        CHECK(masks[l].rowwise().sum().minCoeff() > 0);
      else
        CHECK(masks[l].isZero());
      CHECK(masks[l + 1].colwise().sum().minCoeff() > 0);
    }
    // connectivity: output r depends on input c through some path iff m_out(r) > m_in(c)
    Matrix<double> paths = masks[0].template cast<double>();
    for (std::size_t l = 1; l < masks.size(); ++l) paths = masks[l].template cast<double>() * paths;
    bool paths_ok = true;
    for (Index r = 0; r < 2 * c.dim; ++r)
      for (Index col = 0; col < c.dim; ++col)
        paths_ok = paths_ok && (paths(r, col) > 0) == (made.output_degrees()[std::size_t(r)] >
                                                       made.input_degrees()[std::size_t(col)]);
    CHECK(paths_ok);
  }
}

TEMPLATE_TEST_CASE("MADE outputs depend exactly on the inputs of lower degree", "[nn][made]", float, double) {
  Rng rng(17);
  const Index n = 16;
  for (const auto& c : configs()) {
    CAPTURE(c.dim, c.label);
    Made<TestType> made(c.dim, c.hidden, c.order, 3);
    test::randomise_parameters(made, rng, 1.0);  // every entry, inside the masks or not
    const Matrix<TestType> x = test::random_batch<TestType>(c.dim, n, rng);
    Matrix<TestType> base, moved;
    made.forward(x, base);
    REQUIRE(base.rows() == 2 * c.dim);
    REQUIRE(base.cols() == n);
    Index leaks = 0, missing = 0;
    std::string first_problem;
    for (Index j = 0; j < c.dim; ++j) {
      Matrix<TestType> perturbed = x;
      for (Index col = 0; col < n; ++col) perturbed(j, col) += TestType(col % 2 == 0 ? 5 : -5);
      made.forward(perturbed, moved);
      for (Index r = 0; r < 2 * c.dim; ++r) {
        const bool may_depend = made.output_degrees()[std::size_t(r)] > made.input_degrees()[std::size_t(j)];
        const bool changed = (moved.row(r).array() != base.row(r).array()).any();  // bitwise
        if (!may_depend && changed) ++leaks;
        if (may_depend && !changed) ++missing;
        if (may_depend != changed && first_problem.empty())
          first_problem = "output " + std::to_string(r) + ", input " + std::to_string(j);
      }
    }
    INFO(first_problem);
    CHECK(leaks == 0);
    CHECK(missing == 0);
  }
}

namespace {

template <class T>
Vector<double> flat_gradients(Made<T>& made) {
  return Eigen::Map<const Vector<T>>(made.gradients().data(), made.num_parameters()).template cast<double>();
}

/// The shapes the finite-difference tests run: without hidden layers in float (a float step of
/// about 0.02 can straddle a ReLU kink), with them too in double.
struct GradientCase {
  Index dim;
  std::vector<Index> hidden;
  InputOrder order;
};
template <class T>
std::vector<GradientCase> gradient_cases() {
  std::vector<GradientCase> cases = {{2, {}, InputOrder::identity()},
                                     {4, {}, InputOrder::permutation({2, 0, 3, 1})}};
  if constexpr (std::is_same_v<T, double>) {
    cases.push_back({3, {5, 4}, InputOrder::reversed()});
    cases.push_back({4, {6}, InputOrder::permutation({2, 0, 3, 1})});
    cases.push_back({1, {3, 2}, InputOrder::identity()});
  }
  return cases;
}

}  // namespace

// Float finite differences step by about 0.02, which can straddle a ReLU kink; float is checked
// by finite differences without hidden layers and against double's gradients with them.
TEMPLATE_TEST_CASE("MADE gradients match finite differences", "[nn][made]", float, double) {
  using T = TestType;
  const auto tol = testing::Tolerances::for_scalar<T>();
  Rng rng(23);
  const std::vector<GradientCase> cases = gradient_cases<T>();
  for (const auto& c : cases) {
    CAPTURE(c.dim, c.hidden.size());
    Made<T> made(c.dim, c.hidden, c.order, 5);
    test::randomise_parameters(made, rng, 0.8);
    Matrix<T> x = test::random_batch<T>(c.dim, 3, rng);
    const Matrix<T> w = test::random_batch<T>(2 * c.dim, 3, rng);
    auto loss = [&]() {
      Matrix<T> out;
      made.forward(x, out);
      return out.template cast<double>().cwiseProduct(w.template cast<double>()).sum();
    };
    zero_gradients(made);
    Matrix<T> out, grad_x;
    made.forward(x, out);
    made.backward(w, &grad_x, true);
    const Vector<double> analytic_params = flat_gradients(made);
    const Vector<double> analytic_x =
        Eigen::Map<const Vector<T>>(grad_x.data(), x.size()).template cast<double>();
    const Vector<double> numeric_x = testing::finite_difference_gradient<T>(
        loss, std::span<T>(x.data(), std::size_t(x.size())), tol.fd_step_scale);
    const Vector<double> numeric_params =
        testing::finite_difference_gradient<T>(loss, made.parameters(), tol.fd_step_scale);
    CHECK(testing::relative_error(analytic_x, numeric_x) <= tol.gradient);
    CHECK(testing::relative_error(analytic_params, numeric_params) <= tol.gradient);

    // without accumulation the parameter gradients stay as they are; a null grad_in is allowed
    made.forward(x, out);
    made.backward(w, nullptr, false);
    CHECK(flat_gradients(made) == analytic_params);
  }
}

TEST_CASE("MADE's float gradients agree with double's", "[nn][made]") {
  Rng rng(27);
  Made<float> made_float(5, {9, 7}, InputOrder::reversed(), 5);
  Made<double> made(5, {9, 7}, InputOrder::reversed(), 5);
  test::randomise_parameters(made_float, rng, 0.8);
  std::ranges::copy(made_float.parameters(), made.parameters().begin());
  const Matrix<float> x = test::random_batch<float>(5, 4, rng);
  const Matrix<float> w = test::random_batch<float>(10, 4, rng);
  Matrix<float> out_float, grad_x_float;
  Matrix<double> out, grad_x;
  made_float.forward(x, out_float);
  made.forward(x.cast<double>(), out);
  CHECK((out_float.cast<double>() - out).cwiseAbs().maxCoeff() <
        1e-5 * std::max(1.0, out.cwiseAbs().maxCoeff()));
  made_float.backward(w, &grad_x_float, true);
  made.backward(w.cast<double>(), &grad_x, true);
  const Vector<double> flat_x = Eigen::Map<const Vector<double>>(grad_x.data(), grad_x.size());
  const Vector<double> flat_x_float =
      Eigen::Map<const Vector<float>>(grad_x_float.data(), grad_x_float.size()).cast<double>();
  CHECK(testing::relative_error(flat_x_float, flat_x) < 1e-5);
  CHECK(testing::relative_error(flat_gradients(made_float), flat_gradients(made)) < 1e-5);
}

TEST_CASE("MADE with zero_last_layer outputs exactly zero", "[nn][made]") {
  Rng rng(29);
  Made<double> made(4, {6, 6}, InputOrder::reversed(), 7, true);
  Matrix<double> out;
  made.forward(test::random_batch<double>(4, 5, rng), out);
  CHECK(out.isZero(0.0));
}

TEST_CASE("MADE copies are deep", "[nn][made]") {
  Made<double> made(3, {4}, InputOrder::identity(), 1);
  Made<double> copy = made;
  CHECK(copy.parameters().data() != made.parameters().data());
  copy.parameters()[0] += 1.0;
  CHECK(copy.parameters()[0] != made.parameters()[0]);
}

TEST_CASE("MADE rejects bad arguments", "[nn][made][errors]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(Made<double>(6, {3, 8}),
                    Contains("Made") && Contains("hidden layer 1 has 3 units, fewer than D − 1 = 5"));
  CHECK_THROWS_WITH(Made<double>(4, {8, 2}), Contains("Made") && Contains("hidden layer 2 has 2 units"));
  CHECK_THROWS_WITH(Made<double>(1, {0}), Contains("Made") && Contains("hidden layer 1 has 0 units"));
  CHECK_THROWS_WITH(Made<double>(0, {4}), Contains("Made") && Contains("dim must be at least 1, got 0"));
  CHECK_THROWS_WITH(Made<double>(3, {4}, InputOrder::permutation({0, 3, 1})),
                    Contains("Made") && Contains("entry 1 is 3"));
  CHECK_THROWS_WITH(Made<double>(3, {4}, InputOrder::permutation({-1, 0, 1})),
                    Contains("Made") && Contains("entry 0 is -1"));
  CHECK_THROWS_WITH(Made<double>(3, {4}, InputOrder::permutation({0, 1, 1})),
                    Contains("Made") && Contains("entry 2 is 1") && Contains("not a permutation"));
  CHECK_THROWS_WITH(Made<double>(3, {4}, InputOrder::permutation({0, 1})),
                    Contains("Made") && Contains("2 entries, expected 3"));

  Made<double> made(3, {4}, InputOrder::identity(), 1);
  Matrix<double> out;
  CHECK_THROWS_AS(made.backward(Matrix<double>::Zero(6, 2), nullptr), std::logic_error);
  CHECK_THROWS_WITH(made.forward(Matrix<double>::Zero(2, 2), out),
                    Contains("Made::forward") && Contains("3 rows"));
  CHECK_THROWS_WITH(made.forward(Matrix<double>::Zero(3, 0), out), Contains("empty batch"));
  made.forward(Matrix<double>::Zero(3, 2), out);
  CHECK_THROWS_WITH(made.backward(Matrix<double>::Zero(6, 3), nullptr),
                    Contains("Made::backward") && Contains("6x2") && Contains("6x3"));
}

TEMPLATE_TEST_CASE("MADE with P = 1 or 3 parameters per dimension keeps the autoregressive property",
                   "[nn][made]", float, double) {
  using T = TestType;
  Rng rng(31);
  const Index n = 32;
  for (const Index p : {1, 3})
    for (const auto& c : configs()) {
      CAPTURE(p, c.dim, c.label);
      Made<T> made(c.dim, c.hidden, c.order, 3, false, p);
      REQUIRE(made.params_per_dim() == p);
      REQUIRE(Index(made.output_degrees().size()) == p * c.dim);
      for (Index r = 0; r < p * c.dim; ++r)
        CHECK(made.output_degrees()[std::size_t(r)] == made.input_degrees()[std::size_t(r % c.dim)]);
      // the hidden layers and each block of D outputs are masked as in the two-parameter MADE
      Made<T> two(c.dim, c.hidden, c.order, 3);
      const auto& masks = made.mlp().masks();
      for (std::size_t l = 0; l + 1 < masks.size(); ++l) CHECK(masks[l] == two.mlp().masks()[l]);
      for (Index q = 0; q < p; ++q)
        CHECK(masks.back().middleRows(q * c.dim, c.dim) == two.mlp().masks().back().topRows(c.dim));

      // each output moves exactly with the inputs of lower degree: every weight random (inside the
      // masks or not), biases of the hidden units above 1 so that no unit is dead on the whole batch
      test::randomise_parameters(made, rng, 1.0);
      for (Index l = 0; l + 1 < made.mlp().layers(); ++l)
        made.mlp().bias(l).array() = made.mlp().bias(l).array().abs() + T(1);
      const Matrix<T> x = test::random_batch<T>(c.dim, n, rng);
      Matrix<T> base, moved;
      made.forward(x, base);
      REQUIRE(base.rows() == p * c.dim);
      Index leaks = 0, missing = 0;
      for (Index j = 0; j < c.dim; ++j) {
        Matrix<T> perturbed = x;
        for (Index col = 0; col < n; ++col) perturbed(j, col) += T(col % 2 == 0 ? 5 : -5);
        made.forward(perturbed, moved);
        for (Index r = 0; r < p * c.dim; ++r) {
          const bool may_depend =
              made.output_degrees()[std::size_t(r)] > made.input_degrees()[std::size_t(j)];
          const bool changed = (moved.row(r).array() != base.row(r).array()).any();  // bitwise
          leaks += !may_depend && changed;
          missing += may_depend && !changed;
        }
      }
      CHECK(leaks == 0);
      CHECK(missing == 0);

      // an incremental pass, generating the dimensions in order, computes every P·D output
      Matrix<T> stepped;
      Matrix<T>& input = made.begin_incremental(n, stepped);
      for (Index k = 0; k < c.dim; ++k) {
        made.incremental_step(k, 0, n, stepped);
        const Index i = made.order()[std::size_t(k)];
        input.row(i) = x.row(i);
      }
      made.end_incremental(n);
      CHECK((stepped - base).template cast<double>().cwiseAbs().maxCoeff() <
            (std::is_same_v<T, float> ? 1e-5 : 1e-12) * std::max(1.0, double(base.cwiseAbs().maxCoeff())));
    }
}

TEST_CASE("MADE rejects fewer than one parameter per dimension", "[nn][made][errors]") {
  CHECK_THROWS_WITH(
      Made<double>(3, {4}, InputOrder::identity(), 0, false, 0),
      Catch::Contains("Made") && Catch::Contains("parameters per dimension must be at least 1, got 0"));
}

// ---- a context fed to the first layer ----------------------------------------------------------

namespace {

/// The hidden sizes of a config with one more unit each: with a context, a degree-0 unit too.
std::vector<Index> with_context_unit(const std::vector<Index>& hidden) {
  std::vector<Index> out = hidden;
  for (auto& units : out) ++units;
  return out;
}

/// A MADE with a C-row context, every parameter random and the hidden biases above 1 so that no
/// unit is dead on the whole batch (every dependency shows in the outputs).
template <class T>
Made<T> random_conditional_made(const Config& c, Index context_dim, Rng& rng) {
  Made<T> made(c.dim, with_context_unit(c.hidden), c.order, 3, false, 2, context_dim);
  test::randomise_parameters(made, rng, 1.0);
  for (Index l = 0; l + 1 < made.mlp().layers(); ++l)
    made.mlp().bias(l).array() = made.mlp().bias(l).array().abs() + T(1);
  return made;
}

}  // namespace

TEST_CASE("MADE with a context has hidden units of every degree 0..D−1 and appends V", "[nn][made]") {
  for (const auto& c : configs()) {
    CAPTURE(c.dim, c.label);
    const std::vector<Index> hidden = with_context_unit(c.hidden);
    Made<double> plain(c.dim, hidden, c.order, 9);
    Made<double> conditional(c.dim, hidden, c.order, 9, false, 2, 3);
    CHECK(conditional.context_dim() == 3);
    CHECK(plain.context_dim() == 0);
    for (const auto& layer : conditional.hidden_degrees()) {
      CHECK(std::ranges::is_sorted(layer));
      for (Index k = 0; k < c.dim; ++k) CHECK(std::ranges::count(layer, k) >= 1);
      CHECK(layer.back() <= c.dim - 1);
    }
    const Index first_units = hidden.empty() ? 2 * c.dim : hidden.front();
    REQUIRE(conditional.num_parameters() == plain.num_parameters() + first_units * 3);
    // V is drawn like the first layer's weights: uniform in ±1/√D, not all zero
    const auto v = conditional.mlp().context_weight();
    REQUIRE(v.data() == conditional.parameters().data() + plain.num_parameters());
    CHECK(v.cwiseAbs().maxCoeff() <= 1.0 / std::sqrt(double(c.dim)));
    CHECK(v.cwiseAbs().maxCoeff() > 0);
    // identity initialisation: with no hidden layer V feeds the outputs and starts at zero too
    Made<double> zero(c.dim, hidden, c.order, 9, true, 2, 3);
    Rng rng(3);
    Matrix<double> out;
    zero.forward_with_context(test::random_batch<double>(c.dim, 4, rng),
                              test::random_batch<double>(3, 4, rng), out);
    CHECK(out.isZero(0.0));
  }
}

TEMPLATE_TEST_CASE(
    "MADE with a context: outputs depend exactly on the inputs of lower degree and on all "
    "of the context",
    "[nn][made]", float, double) {
  using T = TestType;
  Rng rng(41);
  const Index n = 32, context_dim = 2;
  for (const auto& c : configs()) {
    CAPTURE(c.dim, c.label);
    Made<T> made = random_conditional_made<T>(c, context_dim, rng);
    const Matrix<T> x = test::random_batch<T>(c.dim, n, rng);
    const Matrix<T> context = test::random_batch<T>(context_dim, n, rng);
    Matrix<T> base, moved;
    made.forward_with_context(x, context, base);
    Index leaks = 0, missing = 0;
    for (Index j = 0; j < c.dim; ++j) {
      Matrix<T> perturbed = x;
      for (Index col = 0; col < n; ++col) perturbed(j, col) += T(col % 2 == 0 ? 5 : -5);
      made.forward_with_context(perturbed, context, moved);
      for (Index r = 0; r < 2 * c.dim; ++r) {
        const bool may_depend = made.output_degrees()[std::size_t(r)] > made.input_degrees()[std::size_t(j)];
        const bool changed = (moved.row(r).array() != base.row(r).array()).any();  // bitwise
        leaks += !may_depend && changed;
        missing += may_depend && !changed;
      }
    }
    CHECK(leaks == 0);
    CHECK(missing == 0);
    // every output moves with every context row (degree 0: below every output's)
    for (Index k = 0; k < context_dim; ++k) {
      Matrix<T> other = context;
      other.row(k).array() += T(3);
      made.forward_with_context(x, other, moved);
      for (Index r = 0; r < 2 * c.dim; ++r) CHECK((moved.row(r).array() != base.row(r).array()).any());
    }
    // the same x with other contexts: the dependence on x is unchanged whatever the context
    const Matrix<T> context2 = test::random_batch<T>(context_dim, n, rng);
    Matrix<T> base2, moved2;
    made.forward_with_context(x, context2, base2);
    const Index last = made.order().back();  // the last dimension generated: no output depends on it
    Matrix<T> perturbed = x;
    perturbed.row(last).array() += T(4);
    made.forward_with_context(perturbed, context2, moved2);
    CHECK((moved2.array() == base2.array()).all());

    // an incremental pass with the context (V c computed once) computes every output
    Matrix<T> stepped;
    Matrix<T>& input = made.begin_incremental(n, context, stepped);
    for (Index k = 0; k < c.dim; ++k) {
      made.incremental_step(k, 0, n, stepped);
      const Index i = made.order()[std::size_t(k)];
      input.row(i) = x.row(i);
    }
    made.end_incremental(n);
    CHECK((stepped - base).template cast<double>().cwiseAbs().maxCoeff() <
          (std::is_same_v<T, float> ? 1e-5 : 1e-12) * std::max(1.0, double(base.cwiseAbs().maxCoeff())));

    // batched = per sample, each column with its own context
    double worst = 0;
    for (Index j = 0; j < n; ++j) {
      Matrix<T> single;
      made.forward_with_context(x.col(j), context.col(j), single);
      worst = std::max(worst, (single - base.col(j)).template cast<double>().cwiseAbs().maxCoeff());
    }
    CHECK(worst <=
          (std::is_same_v<T, float> ? 1e-5 : 1e-12) * std::max(1.0, double(base.cwiseAbs().maxCoeff())));
  }
}

// As for the unconditional MADE, float is checked by finite differences without hidden layers.
TEMPLATE_TEST_CASE(
    "MADE with a context: gradients w.r.t. x, the context and the parameters match finite "
    "differences",
    "[nn][made]", float, double) {
  using T = TestType;
  const auto tol = testing::Tolerances::for_scalar<T>();
  Rng rng(43);
  const std::vector<GradientCase> cases = gradient_cases<T>();
  const Index context_dim = 3;
  for (const auto& c : cases) {
    CAPTURE(c.dim, c.hidden.size());
    Made<T> made(c.dim, c.hidden, c.order, 5, false, 2, context_dim);
    test::randomise_parameters(made, rng, 0.8);
    Matrix<T> x = test::random_batch<T>(c.dim, 3, rng);
    Matrix<T> context = test::random_batch<T>(context_dim, 3, rng);
    const Matrix<T> w = test::random_batch<T>(2 * c.dim, 3, rng);
    auto loss = [&]() {
      Matrix<T> out;
      made.forward_with_context(x, context, out);
      return out.template cast<double>().cwiseProduct(w.template cast<double>()).sum();
    };
    zero_gradients(made);
    Matrix<T> out, grad_x;
    Matrix<T> grad_context = Matrix<T>::Constant(context_dim, 3, T(0.5));  // added to, not overwritten
    made.forward_with_context(x, context, out);
    made.backward(w, &grad_x, true, NoColumns{}, NoColumns{}, &grad_context);
    grad_context.array() -= T(0.5);
    const Vector<double> analytic_params = flat_gradients(made);
    const Vector<double> numeric_x = testing::finite_difference_gradient<T>(
        loss, std::span<T>(x.data(), std::size_t(x.size())), tol.fd_step_scale);
    const Vector<double> numeric_context = testing::finite_difference_gradient<T>(
        loss, std::span<T>(context.data(), std::size_t(context.size())), tol.fd_step_scale);
    const Vector<double> numeric_params =
        testing::finite_difference_gradient<T>(loss, made.parameters(), tol.fd_step_scale);
    CHECK(testing::relative_error(
              Eigen::Map<const Vector<T>>(grad_x.data(), x.size()).template cast<double>(), numeric_x) <=
          tol.gradient);
    CHECK(testing::relative_error(
              Eigen::Map<const Vector<T>>(grad_context.data(), context.size()).template cast<double>(),
              numeric_context) <= tol.gradient);
    CHECK(testing::relative_error(analytic_params, numeric_params) <= tol.gradient);
  }
}

TEST_CASE("MADE with a context rejects missing, unexpected and misshapen contexts", "[nn][made][errors]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(Made<double>(3, {4}, InputOrder::identity(), 0, false, 2, -1),
                    Contains("Made") && Contains("context_dim is -1"));
  CHECK_THROWS_WITH(Made<double>(3, {4, 2}, InputOrder::identity(), 0, false, 2, 1),
                    Contains("Made") && Contains("hidden layer 2 has 2 units, fewer than D = 3"));
  Made<double> conditional(3, {4}, InputOrder::identity(), 1, false, 2, 2);
  Made<double> plain(3, {4}, InputOrder::identity(), 1);
  Matrix<double> out;
  const Matrix<double> x = Matrix<double>::Zero(3, 4);
  CHECK_THROWS_WITH(conditional.forward(x, out), Contains("Made::forward") && Contains("context of 2 rows"));
  CHECK_THROWS_WITH(conditional.begin_incremental(4, out),
                    Contains("Mlp::begin_partial") && Contains("context of 2 rows"));
  CHECK_THROWS_WITH(plain.forward_with_context(x, Matrix<double>::Zero(2, 4), out),
                    Contains("forward_with_context") && Contains("reads no context, got a 2x4"));
  CHECK_THROWS_WITH(
      conditional.forward_with_context(x, Matrix<double>::Zero(3, 4), out),
      Contains("forward_with_context") && Contains("expected a 2x4 context") && Contains("got 3x4"));
  CHECK_THROWS_WITH(conditional.forward_with_context(x, Matrix<double>::Zero(2, 5), out),
                    Contains("forward_with_context") && Contains("got 2x5"));
  conditional.forward_with_context(x, Matrix<double>::Zero(2, 4), out);
  Matrix<double> grad_context = Matrix<double>::Zero(2, 3);
  CHECK_THROWS_WITH(conditional.backward(Matrix<double>::Zero(6, 4), nullptr, true, NoColumns{}, NoColumns{},
                                         &grad_context),
                    Contains("Mlp::backward") && Contains("expected a 2x4") && Contains("got 2x3"));
}
