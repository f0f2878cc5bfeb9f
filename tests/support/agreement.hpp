#pragma once
// Test helpers comparing a prediction with a Monte-Carlo measurement. The tolerance is a
// number of the measurement's own standard errors, never a hand-picked percentage.
#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include "sigprop/validation/estimator.hpp"

namespace sigprop::test {

/// Standard errors allowed between a prediction and a measurement. With jackknife errors
/// from 16 blocks, 5 standard errors keep false alarms below about 1e-4 per check.
inline constexpr double k_se = 5.0;

inline void check_agrees(const char* what, double predicted, const validation::measured& m,
                         double k = k_se) {
    INFO(std::string(what) << ": predicted " << predicted << ", measured " << m.value << " +- " << m.se);
    CHECK(std::isfinite(m.value));
    CHECK(m.se >= 0);
    CHECK(std::abs(predicted - m.value) <= k * m.se + 1e-12 * std::abs(predicted));
}

}  // namespace sigprop::test
