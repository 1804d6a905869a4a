#pragma once
/// @file
/// knead's core: everything that needs only Eigen — the Bijector concept and its calls, every
/// bijector, MADE and the MLPs behind the couplings, the distributions and TransformedDistribution,
/// the flow builders (make_flow), the thread count, and the data helpers (two moons, the SIGGRAPH
/// generator, CSV, standardisation, splits). CMake target knead::core, pkg-config module knead-core.
///
/// The other umbrellas: knead/io.hpp (saving and loading flows, safetensors: needs nlohmann-json),
/// knead/train.hpp (optimizers, the trainer and its checkpoints: needs nlohmann-json, for the
/// checkpoints), knead/knead.hpp (all three). The optimizers alone (knead/optim/*.hpp) and the
/// test helpers (knead/testing/*.hpp: the bijector conformance checker, finite differences) need
/// only Eigen too; include them one by one.

#include "knead/core/bijector.hpp"
#include "knead/core/conditional.hpp"
#include "knead/core/no_grad.hpp"
#include "knead/core/parameters.hpp"
#include "knead/core/threads.hpp"
#include "knead/core/types.hpp"

#include "knead/bijectors/any_bijector.hpp"
#include "knead/bijectors/autoregressive.hpp"
#include "knead/bijectors/batch_norm.hpp"
#include "knead/bijectors/chain.hpp"
#include "knead/bijectors/coupling.hpp"
#include "knead/bijectors/dynamic_chain.hpp"
#include "knead/bijectors/elementwise_affine.hpp"
#include "knead/bijectors/iaf.hpp"
#include "knead/bijectors/invert.hpp"
#include "knead/bijectors/leaky_relu.hpp"
#include "knead/bijectors/maf.hpp"
#include "knead/bijectors/neural_spline.hpp"
#include "knead/bijectors/permute.hpp"
#include "knead/bijectors/sigmoid.hpp"
#include "knead/bijectors/triangular_affine.hpp"
#include "knead/nn/log_scale_guard.hpp"
#include "knead/nn/made.hpp"
#include "knead/nn/mlp.hpp"
#include "knead/transformers/additive.hpp"
#include "knead/transformers/affine.hpp"
#include "knead/transformers/rational_quadratic.hpp"
#include "knead/transformers/transformer.hpp"

#include "knead/distributions/any_distribution.hpp"
#include "knead/distributions/diagonal_normal.hpp"
#include "knead/distributions/mixture_of_gaussians.hpp"
#include "knead/distributions/standard_normal.hpp"
#include "knead/distributions/transformed_distribution.hpp"

#include "knead/flows/builder.hpp"

#include "knead/data/csv.hpp"
#include "knead/data/random.hpp"
#include "knead/data/siggraph.hpp"
#include "knead/data/split.hpp"
#include "knead/data/standardizer.hpp"
#include "knead/data/two_moons.hpp"
