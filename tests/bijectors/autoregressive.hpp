#pragma once
// The sweep of cases shared by the MAF and IAF conformance tests.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "knead/bijectors/maf.hpp"
#include "support.hpp"

namespace knead::test {

/// Calls f(d, options) for d ∈ {1, 2, 3, 5}; the identity, reversed and custom_order(d) input
/// orders; every log-scale guard kind; random and identity initialisation (options.identity_init);
/// MADE seeded with d + seed_offset. The order of the cases is fixed (the tests draw from one Rng
/// along it); each is captured for failure messages.
template <class T, class CustomOrder, class F>
void for_each_autoregressive_case(CustomOrder custom_order, std::uint64_t seed_offset, F f) {
  for (const Index d : {1, 2, 3, 5}) {
    const std::vector<std::pair<InputOrder, std::string>> orders = {
        {InputOrder::identity(), "identity"},
        {InputOrder::reversed(), "reversed"},
        {InputOrder::permutation(custom_order(d)), "custom"}};
    for (const auto& [order, order_name] : orders)
      for (const auto kind :
           {LogScaleGuardKind::none, LogScaleGuardKind::clamp, LogScaleGuardKind::soft_clamp})
        for (const bool identity : {false, true}) {
          CAPTURE(d, order_name, int(kind), identity);
          MafOptions<T> options;
          options.hidden = conformance_hidden<T>(8);
          options.order = order;
          options.guard = {kind, T(1)};  // a small bound, so the guards act on the values drawn
          options.identity_init = identity;
          options.seed = std::uint64_t(d) + seed_offset;
          f(d, options);
        }
  }
}

}  // namespace knead::test
