#include "knead/linalg/mask_cover.hpp"

#include "knead/nn/made.hpp"
#include "linalg/mask_examples.hpp"
#include "support.hpp"

using namespace knead;
using linalg::cover_mask;
using linalg::MaskBlock;

namespace {

template <class T>
Matrix<Index> ones_of(const Matrix<T>& mask) {
  return (mask.array() != T(0)).template cast<Index>();
}

/// The blocks lie inside the matrix and tile a superset of its ones without overlap, and blocks
/// marked full (computed from W as is) hold only ones.
void check_cover(const Matrix<Index>& ones, const std::vector<MaskBlock>& blocks) {
  Matrix<int> hits = Matrix<int>::Zero(ones.rows(), ones.cols());
  for (const MaskBlock& b : blocks) {
    REQUIRE(b.rows > 0);
    REQUIRE(b.cols > 0);
    REQUIRE((b.row >= 0 && b.row + b.rows <= ones.rows() && b.col >= 0 && b.col + b.cols <= ones.cols()));
    hits.block(b.row, b.col, b.rows, b.cols).array() += 1;
    if (!b.partial) CHECK((ones.block(b.row, b.col, b.rows, b.cols).array() == 1).all());
  }
  CHECK(hits.maxCoeff() <= 1);
  CHECK((ones.array().cast<int>() <= hits.array()).all());
}

Index area(const std::vector<MaskBlock>& blocks) {
  Index n = 0;
  for (const MaskBlock& b : blocks) n += b.rows * b.cols;
  return n;
}

double cost(const std::vector<MaskBlock>& blocks) {
  double c = 0;
  for (const MaskBlock& b : blocks) c += linalg::block_cost(b.rows, b.cols, b.partial);
  return c;
}

}  // namespace

TEST_CASE("cover_mask covers MADE's masks and their transposes", "[linalg][mask_cover]") {
  for (const auto& mask : test::made_masks<float>()) {
    for (const Matrix<Index>& ones : {ones_of(mask), Matrix<Index>(ones_of(mask).transpose())}) {
      INFO("mask " << ones.rows() << "x" << ones.cols());
      const std::vector<MaskBlock> blocks = cover_mask(ones);
      check_cover(ones, blocks);
      // blocks skip work: at most the whole matrix, at least the ones
      CHECK(area(blocks) <= ones.size());
      CHECK(area(blocks) >= ones.sum());
      // and the search is no worse than multiplying the whole matrix as one masked block
      CHECK(cost(blocks) <= linalg::block_cost(ones.rows(), ones.cols(), true));
    }
  }
}

TEST_CASE("cover_mask skips about half of a large MADE layer", "[linalg][mask_cover]") {
  Made<float> made(64, {512, 512}, InputOrder::identity(), 1);
  for (const auto& mask : made.mlp().masks()) {
    INFO("mask " << mask.rows() << "x" << mask.cols() << " with " << mask.sum() << " ones");
    // the masks are about half full; the blocks add only a band along the stair edge (16 rows
    // high at most, about an eighth of the 128 rows of the output layer)
    CHECK(double(area(cover_mask(ones_of(mask)))) < 0.65 * double(mask.size()));
  }
}

TEST_CASE("cover_mask covers unstructured and trivial masks", "[linalg][mask_cover]") {
  Rng rng(11);
  for (const Matrix<float>& mask :
       {test::random_mask<float>(40, 30, 0.5, rng), test::random_mask<float>(7, 90, 0.2, rng)}) {
    INFO("mask " << mask.rows() << "x" << mask.cols());
    check_cover(ones_of(mask), cover_mask(ones_of(mask)));
    check_cover(ones_of(Matrix<float>(mask.transpose())),
                cover_mask(ones_of(Matrix<float>(mask.transpose()))));
  }
  const std::vector<MaskBlock> all = cover_mask(Matrix<Index>::Ones(20, 33));
  REQUIRE(all.size() == 1);
  CHECK((all[0].row == 0 && all[0].rows == 20 && all[0].col == 0 && all[0].cols == 33 && !all[0].partial));
  CHECK(cover_mask(Matrix<Index>::Zero(9, 4)).empty());
}
