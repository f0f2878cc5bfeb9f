#pragma once
// The two moment records every component maps: forward moments of an activation and
// moments of the gradient flowing back into it (REFERENCE.md section 1).
#include "sigprop/core/config.hpp"

namespace sigprop {

/// Moments of one activation element X[i,k]: its mean, its variance and the correlation
/// between two different tokens i != j in the same unit k (corr -> 1 is rank collapse).
template <class T>
struct signal {
    T mean{0};
    T var{1};
    T corr{0};
};

/// Moments of the gradient dLoss/dX (mean zero): variance and cross-token correlation.
template <class T>
struct gradient {
    T var{1};
    T corr{0};
};

}  // namespace sigprop
