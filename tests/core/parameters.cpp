// ParameterBlock and ParameterGroup: deep copies, moves that keep the buffer, composites that
// gather their parts into one buffer, and buffers that start on 64-byte boundaries.

#include <cstdint>
#include <memory>
#include <vector>

#include <catch2/catch.hpp>

#include "knead/core/parameters.hpp"

using knead::Index;
using knead::ParameterBlock;
using knead::ParameterGroup;
using knead::ParameterStorage;

namespace {

template <class T>
void fill_iota(ParameterBlock<T>& block, T start) {
  T x = start;
  for (T& v : block.values()) v = x++;
  for (T& g : block.gradients()) g = -(x++);
}

template <class T>
bool on_64_byte_boundary(const T* p) {
  return reinterpret_cast<std::uintptr_t>(p) % 64 == 0;
}

}  // namespace

TEMPLATE_TEST_CASE("A copied block owns a fresh buffer with the same values", "[core][parameters]", float,
                   double) {
  ParameterBlock<TestType> a(5);
  fill_iota(a, TestType(1));
  ParameterBlock<TestType> b = a;
  REQUIRE(b.value_data() != a.value_data());
  for (Index i = 0; i < 5; ++i) {
    CHECK(b.values()[std::size_t(i)] == a.values()[std::size_t(i)]);
    CHECK(b.gradients()[std::size_t(i)] == a.gradients()[std::size_t(i)]);
  }
  b.values()[0] = TestType(100);
  CHECK(a.values()[0] == TestType(1));
}

TEMPLATE_TEST_CASE("A moved block keeps its buffer", "[core][parameters]", float, double) {
  ParameterBlock<TestType> a(3);
  const TestType* data = a.value_data();
  ParameterBlock<TestType> b = std::move(a);
  CHECK(b.value_data() == data);
  CHECK(b.size() == 3);
}

TEMPLATE_TEST_CASE("A group gathers its parts into one buffer, in order, keeping their values",
                   "[core][parameters]", float, double) {
  using T = TestType;
  std::vector<ParameterBlock<T>> parts;
  parts.emplace_back(2);
  parts.emplace_back(0);
  parts.emplace_back(3);
  fill_iota(parts[0], T(1));
  fill_iota(parts[2], T(10));
  struct Part {
    ParameterBlock<T>* block;
    [[nodiscard]] Index num_parameters() const { return block->size(); }
    void bind_parameters(const std::shared_ptr<ParameterStorage<T>>& s, Index at) { block->bind(s, at); }
  };
  std::vector<Part> views{{&parts[0]}, {&parts[1]}, {&parts[2]}};
  ParameterGroup<T> group;
  group.adopt([&](auto f) {
    for (Part& p : views) f(p);
  });
  REQUIRE(group.size() == 5);
  CHECK(parts[2].value_data() == parts[0].value_data() + 2);
  const std::vector<T> expected_values{1, 2, 10, 11, 12};
  const std::vector<T> expected_gradients{-3, -4, -13, -14, -15};
  for (std::size_t i = 0; i < 5; ++i) {
    CHECK(group.values()[i] == expected_values[i]);
    CHECK(group.gradients()[i] == expected_gradients[i]);
  }
  // Writing through the group is seen by the parts.
  group.values()[3] = T(-7);
  CHECK(parts[2].values()[1] == T(-7));
}

TEMPLATE_TEST_CASE("Parameter buffers start on 64-byte boundaries", "[core][parameters]", float, double) {
  // With 16-byte alignment, vectorised sums would peel a heap-address-dependent number of scalars
  // and the last bits of training results would change from run to run.
  for (Index n : {1, 7, 64, 1000}) {
    CAPTURE(n);
    ParameterBlock<TestType> block(n);
    CHECK(on_64_byte_boundary(block.value_data()));
    CHECK(on_64_byte_boundary(block.gradient_data()));
  }
}
