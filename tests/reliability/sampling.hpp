#pragma once
// Random valid inputs for the reliability sweeps: log-uniform variances and sizes over
// the ranges of docs/RELIABILITY.md, correlations that hit the endpoints -1, 0 and 1 on
// purpose, and a point count scaled by SIGPROP_SWEEP_POINTS (default 1e5 in all).
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>

#include "sigprop/core/moments.hpp"

namespace sigprop::reliability {

/// The total number of sweep points, from SIGPROP_SWEEP_POINTS (e.g. 1e7), default 1e5.
inline double total_points() {
    const char* s = std::getenv("SIGPROP_SWEEP_POINTS");
    return s ? std::strtod(s, nullptr) : 1e5;
}

/// This sweep's share of the total (shares sum to 1 over the sweep test cases).
inline long long points(double share) { return static_cast<long long>(total_points() * share); }

class sampler {
public:
    explicit sampler(std::uint64_t seed) : rng_(seed) {}

    double uniform(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng_); }
    /// 10^[a, b], uniform in the exponent.
    double log_uniform(double a, double b) { return std::pow(10.0, uniform(a, b)); }
    int log_int(double max) { return static_cast<int>(std::lround(log_uniform(0, std::log10(max)))); }
    bool chance(double p) { return uniform(0, 1) < p; }

    /// A correlation in [-1, 1]: one draw in four is an endpoint or 0 exactly.
    double corr() {
        switch (std::uniform_int_distribution<int>(0, 7)(rng_)) {
            case 0: return -1;
            case 1: return 1;
            default: return uniform(-1, 1);
        }
    }
    double var() { return chance(0.05) ? 0.0 : log_uniform(-12, 12); }
    double mean() { return chance(0.3) ? 0.0 : (chance(0.5) ? 1 : -1) * log_uniform(-6, 6); }
    double drop() { return chance(0.1) ? 0.0 : (chance(0.1) ? 0.999 : uniform(0, 0.999)); }
    double sigma() { return chance(0.05) ? 0.0 : log_uniform(-6, 3); }

    signal<double> any_signal(bool zero_mean) { return {zero_mean ? 0.0 : mean(), var(), corr()}; }
    gradient<double> any_gradient() { return {chance(0.05) ? 0.0 : log_uniform(-12, 12), corr()}; }

    std::mt19937_64& engine() { return rng_; }

private:
    std::mt19937_64 rng_;
};

}  // namespace sigprop::reliability
