#include "knead/core/types.hpp"

#include <new>

#include "support.hpp"

using namespace knead;

TEST_CASE("resize_workspace sizes matrices and vectors", "[core][types]") {
  Matrix<double> m;
  resize_workspace(m, 3, 4);
  CHECK((m.rows() == 3 && m.cols() == 4));
  m.setConstant(2.0);
  const double* storage = m.data();
  resize_workspace(m, 4, 3);  // the same number of entries: the storage stays
  CHECK((m.rows() == 4 && m.cols() == 3 && m.data() == storage));
  resize_workspace(m, 5, 5);
  CHECK((m.rows() == 5 && m.cols() == 5));
  RowVector<float> r;
  resize_workspace(r, 7);
  CHECK((r.rows() == 1 && r.cols() == 7));
  Vector<float> v;
  resize_workspace(v, 6);
  CHECK((v.rows() == 6 && v.cols() == 1));
}

TEST_CASE("resize_workspace leaves an empty, valid matrix when the allocation fails",
          "[core][types][errors]") {
  // 2^30 × 2^30 doubles (8 EiB) cannot be allocated: the growth throws after the old storage is
  // released. The matrix must be empty (not holding the freed pointer) and usable again; its
  // destructor runs at the end of the test.
  Matrix<double> m = Matrix<double>::Ones(10, 10);
  const Index huge = Index(1) << 30;
  CHECK_THROWS_AS(resize_workspace(m, huge, huge), std::bad_alloc);
  CHECK(m.size() == 0);
  resize_workspace(m, 2, 2);
  m.setZero();
  CHECK(m.sum() == 0.0);

  RowVector<double> r = RowVector<double>::Ones(10);
  CHECK_THROWS_AS(resize_workspace(r, Index(1) << 50), std::bad_alloc);
  CHECK(r.size() == 0);
}
