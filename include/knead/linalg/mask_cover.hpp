#pragma once
/// @file
/// cover_mask: rectangles ("blocks") covering the non-zeros of a fixed 0/1 mask, which
/// MaskedLinearPlan (masked_linear.hpp) multiplies one by one so that a masked product skips the
/// structurally zero entries.
///
/// A block is full (all ones: computed straight from W) or partial (mixed: W ⊙ M is formed for it
/// while packing). MADE's masks are staircases once its hidden units are sorted by degree: a few
/// large full blocks and thin partial ones along the stair edge cover them. Which blocks is decided
/// by a cost model of the GEMM (block_cost): a thin block runs far below peak, so the cover merges
/// narrow runs of columns and stops splitting where computing a few zeros is cheaper.

#include <algorithm>
#include <array>
#include <map>
#include <utility>
#include <vector>

#include <Eigen/Core>

#include "knead/core/types.hpp"

namespace knead::linalg {

/// A rectangle of a weight matrix: all ones in the mask (full), or mixed (partial).
struct MaskBlock {
  Index row, rows, col, cols;
  bool partial;
  bool operator==(const MaskBlock&) const = default;
};

/// Smallest partial block height: below it the stair edge is covered by masked copies.
inline constexpr Index min_partial_rows = 16;

using Counts = Eigen::Matrix<Index, Eigen::Dynamic, Eigen::Dynamic>;

/// counts(r, c) = the number of ones in rows [0, r) of column c of a 0/1 matrix.
inline Counts prefix_counts(const Matrix<Index>& ones) {
  Counts counts(ones.rows() + 1, ones.cols());
  counts.row(0).setZero();
  for (Index r = 0; r < ones.rows(); ++r) counts.row(r + 1) = counts.row(r) + ones.row(r);
  return counts;
}

/// Estimated cost of one block's GEMM, in multiply-adds, for a batch of 256 columns. Besides the
/// block's own multiply-adds, every call packs its slice of the batch and its block of W (a
/// partial block also copies W⊙M first) and reads and writes its slice of the output; memory
/// traffic costs several multiply-adds per element (AVX-512 does 32 multiply-adds per cycle), and
/// each call has a fixed overhead. So thin blocks (few rows or, worse, few columns) cost far more
/// than their multiply-adds, and the plan prefers computing some zeros to splitting further.
inline double block_cost(Index rows, Index cols, bool partial) {
  constexpr double batch = 256, memory = 4, call = 8192;
  const double r = double(rows), c = double(cols);
  return r * c * batch + memory * (c * batch + r * c * (partial ? 2 : 1) + r * batch) + call;
}

/// Blocks and their total block_cost.
struct MaskCover {
  double cost = 0;
  std::vector<MaskBlock> blocks;
  void add(const MaskCover& other) {
    cost += other.cost;
    blocks.insert(blocks.end(), other.blocks.begin(), other.blocks.end());
  }
  void add(MaskBlock b) {
    cost += block_cost(b.rows, b.cols, b.partial);
    blocks.push_back(b);
  }
};

/// The cheapest cover (by block_cost) of rows [r0, r1) × cols [c0, c1) of the mask whose
/// per-column prefix counts are `counts`. The columns fall into runs: all ones over the strip (a
/// full block), all zeros (nothing) or mixed (one partial block, or, when taller than
/// min_partial_rows, the cheapest covers of its two halves by rows). Neighbouring runs may also be
/// merged into one partial block, which pays when a run is only a few columns wide; a dynamic
/// programme over the runs picks the cheapest grouping.
struct MaskPlanner {
  Counts counts;
  std::map<std::array<Index, 4>, MaskCover> known;  // covers already found (the recursion revisits them)

  MaskCover cover(Index r0, Index r1, Index c0, Index c1) {
    const std::array<Index, 4> key{r0, r1, c0, c1};
    if (const auto it = known.find(key); it != known.end()) return it->second;
    return known[key] = search(r0, r1, c0, c1);
  }

  /// The cheapest covers of the top and bottom halves, split at a multiple of 8 rows (SIMD-friendly).
  MaskCover halves(Index r0, Index r1, Index c0, Index c1) {
    const Index mid = std::min(r1, r0 + ((r1 - r0) / 2 + 7) / 8 * 8);
    MaskCover both = cover(r0, mid, c0, c1);
    both.add(cover(mid, r1, c0, c1));
    return both;
  }

  MaskCover search(Index r0, Index r1, Index c0, Index c1) {
    const Index h = r1 - r0;
    if (h <= 0 || c1 <= c0) return {};
    struct Run {
      Index begin, end;
      int kind;  // 0: all zeros, 1: all ones, 2: mixed
    };
    std::vector<Run> runs;
    for (Index c = c0; c < c1; ++c) {
      const Index k = counts(r1, c) - counts(r0, c);
      const int kind = k == 0 ? 0 : (k == h ? 1 : 2);
      if (!runs.empty() && runs.back().kind == kind)
        runs.back().end = c + 1;
      else
        runs.push_back({c, c + 1, kind});
    }
    if (!runs.empty() && runs.back().kind == 0) runs.pop_back();
    if (!runs.empty() && runs.front().kind == 0) runs.erase(runs.begin());
    const std::size_t n = runs.size();
    if (n == 0) return {};

    auto single = [&](const Run& run) {
      MaskCover c;
      if (run.kind == 0) return c;
      c.add({r0, h, run.begin, run.end - run.begin, run.kind == 2});
      if (run.kind == 2 && h > min_partial_rows) {
        MaskCover split = halves(r0, r1, run.begin, run.end);
        if (split.cost < c.cost) c = std::move(split);
      }
      return c;
    };
    // best[j]: the cheapest cover of runs [0, j); from[j]: where its last group starts.
    constexpr std::size_t longest_group = 8;
    std::vector<double> best(n + 1, 0);
    std::vector<std::size_t> from(n + 1, 0);
    std::vector<MaskCover> singles;
    for (const Run& run : runs) singles.push_back(single(run));
    for (std::size_t j = 1; j <= n; ++j) {
      best[j] = best[j - 1] + singles[j - 1].cost;
      from[j] = j - 1;
      for (std::size_t i = j >= longest_group ? j - longest_group : 0; i + 1 < j; ++i) {
        const double merged = best[i] + block_cost(h, runs[j - 1].end - runs[i].begin, true);
        if (merged < best[j]) best[j] = merged, from[j] = i;
      }
    }
    MaskCover result;
    if (h > min_partial_rows && n > 1) {  // or split the whole strip by rows
      MaskCover split = halves(r0, r1, runs.front().begin, runs.back().end);
      if (split.cost < best[n]) return split;
    }
    std::vector<std::size_t> starts;
    for (std::size_t j = n; j > 0; j = from[j]) starts.push_back(from[j]);
    std::reverse(starts.begin(), starts.end());
    for (std::size_t g = 0; g < starts.size(); ++g) {
      const std::size_t i = starts[g], j = g + 1 < starts.size() ? starts[g + 1] : n;
      if (j == i + 1)
        result.add(singles[i]);
      else
        result.add({r0, h, runs[i].begin, runs[j - 1].end - runs[i].begin, true});
    }
    return result;
  }
};

/// The cheapest cover (by block_cost) of the non-zeros of `ones` (a 0/1 matrix, rows × cols),
/// in the matrix's coordinates. Blocks do not overlap; full blocks hold only ones.
inline std::vector<MaskBlock> cover_mask(const Matrix<Index>& ones) {
  return MaskPlanner{prefix_counts(ones), {}}.cover(0, ones.rows(), 0, ones.cols()).blocks;
}

}  // namespace knead::linalg
