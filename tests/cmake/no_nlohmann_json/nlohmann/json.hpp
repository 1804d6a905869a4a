// Stands in for nlohmann-json where a program must compile with Eigen alone (knead::core): placed
// first on the include path, it stops the build of anything that includes nlohmann-json.
#error "a knead::core program included nlohmann-json: knead/core.hpp must need only Eigen"
