#pragma once
/// @file
/// knead: normalizing flows on Eigen. Include this for everything, or the single headers you use.

#include "knead/core/bijector.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/parameters.hpp"
#include "knead/core/types.hpp"

#include "knead/bijectors/any_bijector.hpp"
#include "knead/bijectors/batch_norm.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/iaf.hpp"
#include "knead/bijectors/invert.hpp"
#include "knead/bijectors/leaky_relu.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/bijectors/triangular_affine.hpp"
#include "knead/nn/log_scale_guard.hpp"
#include "knead/nn/made.hpp"
#include "knead/nn/mlp.hpp"

#include "knead/data/csv.hpp"
#include "knead/data/siggraph.hpp"
#include "knead/data/split.hpp"
#include "knead/data/standardizer.hpp"
#include "knead/data/two_moons.hpp"

#include "knead/flows/builder.hpp"

#include "knead/optim/adam.hpp"
#include "knead/optim/clip.hpp"
#include "knead/optim/schedule.hpp"
#include "knead/optim/sgd.hpp"
#include "knead/train/trainer.hpp"

#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"
