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
  // 2^20 × 2^20 doubles (8 TiB) cannot be allocated: the growth throws after the old storage is
  // released. The matrix must be empty (not holding the freed pointer) and usable again; its
  // destructor runs at the end of the test.
  Matrix<double> m = Matrix<double>::Ones(10, 10);
  const Index huge = Index(1) << 20;
  CHECK_THROWS_AS(resize_workspace(m, huge, huge), std::bad_alloc);
  CHECK(m.size() == 0);
  resize_workspace(m, 2, 2);
  m.setZero();
  CHECK(m.sum() == 0.0);

  RowVector<double> r = RowVector<double>::Ones(10);
  CHECK_THROWS_AS(resize_workspace(r, Index(1) << 50), std::bad_alloc);
  CHECK(r.size() == 0);
}

TEST_CASE("A workspace no process can address is refused before its storage is touched",
          "[core][types][errors]") {
  Matrix<double> m = Matrix<double>::Ones(3, 3);
  const Index huge = Index(1) << 40;
  CHECK_THROWS_AS(resize_workspace(m, huge, huge), std::bad_alloc);
  CHECK_THROWS_WITH(resize_workspace(m, huge, huge),
                    Catch::Contains("knead::resize_workspace") &&
                        Catch::Contains("a batch of 1099511627776 columns") &&
                        Catch::Contains("more than a process can address"));
  CHECK(m == Matrix<double>::Ones(3, 3));
}

TEST_CASE("A failed workspace growth is a std::bad_alloc giving the size it needed",
          "[core][types][errors]") {
  Matrix<float> m = Matrix<float>::Ones(2, 2);
  const Index rows = Index(1) << 18, cols = Index(1) << 20;  // 2^38 floats: 1.1 TB, more than the machine has
  try {
    resize_workspace(m, rows, cols);
    FAIL("the allocation of 1.1 TB succeeded");
  } catch (const std::bad_alloc& e) {
    CHECK_THAT(e.what(), Catch::Contains("262144 x 1048576 values (1.1 TB)") &&
                             Catch::Contains("which could not be allocated"));
  }
  CHECK(m.size() == 0);
}
