#pragma once
/// @file
/// knead: normalizing flows on Eigen. Include this for everything, or the single headers you use.

#include "knead/core/bijector.hpp"
#include "knead/core/parameters.hpp"
#include "knead/core/types.hpp"

#include "knead/bijectors/any_bijector.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/invert.hpp"

#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
