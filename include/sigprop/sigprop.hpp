#pragma once
// The whole public library: every component of Kedia et al. (ICML 2024), Table 1, the
// multi-head and causal attention built from them, the combinators and whole models.
#include "sigprop/core/config.hpp"
#include "sigprop/core/errors.hpp"
#include "sigprop/core/form.hpp"
#include "sigprop/core/moments.hpp"

#include "sigprop/components/attention.hpp"
#include "sigprop/components/dropout.hpp"
#include "sigprop/components/embedding.hpp"
#include "sigprop/components/gelu.hpp"
#include "sigprop/components/layer_norm.hpp"
#include "sigprop/components/linear.hpp"
#include "sigprop/components/multi_head_attention.hpp"
#include "sigprop/components/relu.hpp"
#include "sigprop/components/softmax.hpp"

#include "sigprop/compose.hpp"
#include "sigprop/models.hpp"
