#pragma once
// How the paper scores a prediction against a measurement (REFERENCE.md section 1), and
// the percentiles of the error table.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "sigprop/validation/sweep/point.hpp"

namespace sigprop::validation {

/// |pred - meas| / |meas|; for a mean or a covariance, whose true value can be 0, the error
/// relative to the predicted variance of the same side is also computed and the smaller
/// of the two kept.
inline double relative_error(quantity q, double predicted, double measured, double predicted_var) {
    const double diff = std::abs(predicted - measured);
    double e = diff / std::abs(measured);
    if (q == quantity::x_mean || q == quantity::x_cov || q == quantity::g_cov) {
        if (predicted_var > 0) e = std::min(e, diff / predicted_var);
    }
    return std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
}

/// The variance that scales a mean or covariance error of quantity q.
inline double scale_of(quantity q, const quantities& pred) {
    const bool backward = q == quantity::g_var || q == quantity::g_cov;
    return backward ? pred[int(quantity::g_var)] : pred[int(quantity::x_var)];
}

/// Errors of all five quantities of one point.
inline quantities errors(const quantities& pred, const quantities& meas) {
    quantities e{};
    for (quantity q : all_quantities)
        e[int(q)] = relative_error(q, pred[int(q)], meas[int(q)], scale_of(q, pred));
    return e;
}

/// The noise floor of one point: the error between two independent half-size measurements,
/// scaled to the full sample (each half has twice the variance of the whole, and their
/// difference twice that of a half; half of the difference has the whole's spread).
inline quantities noise_floor(const quantities& half_a, const quantities& half_b,
                              const quantities& pred) {
    quantities e{};
    for (quantity q : all_quantities) {
        const int i = int(q);
        const double mid = 0.5 * (half_a[i] + half_b[i]);
        const double half_diff = 0.5 * (half_a[i] - half_b[i]);
        e[i] = relative_error(q, mid + half_diff, mid, scale_of(q, pred));
    }
    return e;
}

/// The p-th percentile (0..100) by linear interpolation between order statistics.
inline double percentile(std::vector<double> v, double p) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    std::sort(v.begin(), v.end());
    const double pos = p / 100.0 * double(v.size() - 1);
    const std::size_t lo = std::size_t(pos);
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    const double w = pos - double(lo);
    if (std::isinf(v[hi])) return w > 0 ? v[hi] : v[lo];
    return v[lo] * (1 - w) + v[hi] * w;
}

}  // namespace sigprop::validation
