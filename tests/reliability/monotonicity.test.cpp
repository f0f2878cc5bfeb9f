// Monotonicities that are theorems, checked at random parameters on a grid of 201
// correlations (or drop probabilities). Each is stated with the reason it must hold; a
// formula that breaks one is wrong, whatever its accuracy elsewhere. Adjacent values may
// differ by rounding, so "nondecreasing" allows a step down of 1e-12 relative (absolute
// below 1).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "reliability/checks.hpp"
#include "reliability/sampling.hpp"
#include "sigprop/sigprop.hpp"

namespace {

using namespace sigprop;
using reliability::sampler;

constexpr double slack = 1e-12;
constexpr int steps = 200;

/// Whether f(t) over t = a .. b in `steps` steps is nondecreasing up to `slack`; `where`
/// gets the first t where it steps down.
template <class F>
bool nondecreasing(double a, double b, F f, double& where) {
    double prev = f(a);
    for (int k = 1; k <= steps; ++k) {
        const double t = k == steps ? b : a + (b - a) * k / steps;
        const double v = f(t);
        if (v < prev - slack * std::max(1.0, std::abs(prev))) {
            where = t;
            return false;
        }
        prev = v;
    }
    return true;
}

template <class Draw>
void check_monotone(long long n, std::uint64_t seed, double a, double b, Draw draw) {
    sampler rng(seed);
    reliability::tally t;
    for (long long i = 0; i < n; ++i) {
        auto [f, describe] = draw(rng);
        double where = 0;
        const bool ok = nondecreasing(a, b, f, where);
        t.record_lazy(ok, [&] { return describe() + " steps down at " + std::to_string(where); });
    }
    INFO("first failure: " << t.first);
    CHECK(t.points > 0);
    CHECK(t.failures == 0);
}

// Each point evaluates 201 values: 1/200 of a point's share keeps the cost in line.
long long curves(double share) { return std::max<long long>(1, reliability::points(share) / steps); }

}  // namespace

TEST_CASE("reliability: output correlations that must grow with the input correlation") {
    SUBCASE("relu forward, any mean") {
        // Price's theorem: d E[f(X) f(Y)] / d rho = s^2 E[f'(X) f'(Y)] >= 0 for the
        // nondecreasing f(x) = max(mu + s x, 0); the output variance does not depend on rho.
        // mean / sd within [-10, 10]: further below zero relu's double evaluation has
        // relative errors above 1e-12 (docs/RELIABILITY.md, Precision), which show here as
        // steps down of that size (found at SIGPROP_SWEEP_POINTS=1e6, mean/sd = -20).
        check_monotone(curves(0.01), 21, -1, 1, [](sampler& r) {
            const double var = r.log_uniform(-12, 12), mu = r.uniform(-10, 10) * std::sqrt(var);
            return std::pair{[=](double c) { return forward(relu<double>{}, signal<double>{mu, var, c}).corr; },
                             [=] { return "relu mean " + std::to_string(mu) + " var " + std::to_string(var); }};
        });
    }
    SUBCASE("gelu forward, rho in [0, 1]") {
        // Mehler's expansion: cov(rho) = sum_k c_k^2 rho^k / k!, every coefficient >= 0,
        // so nondecreasing for rho >= 0 whatever the function (gelu is not monotone, so
        // Price's argument does not cover rho < 0, and we do not check there).
        check_monotone(curves(0.01), 22, 0, 1, [](sampler& r) {
            const double var = r.log_uniform(-12, 12);
            return std::pair{[=](double c) { return forward(gelu<double>{}, signal<double>{0, var, c}).corr; },
                             [=] { return "gelu var " + std::to_string(var); }};
        });
    }
    SUBCASE("relu backward, g.corr >= 0") {
        // The gradient correlation is g.corr P(X > -mu, Y > -mu) / P(X > -mu): the orthant
        // probability grows with rho (Plackett: d Phi_2 / d rho = phi_2 >= 0).
        check_monotone(curves(0.01), 23, -1, 1, [](sampler& r) {
            const double var = r.log_uniform(-12, 12), mu = r.uniform(-10, 10) * std::sqrt(var);
            const double gc = std::abs(r.corr());
            return std::pair{[=](double c) {
                                 return backward(relu<double>{}, signal<double>{mu, var, c}, gradient<double>{1, gc}).corr;
                             },
                             [=] { return "relu backward mean " + std::to_string(mu) + " var " + std::to_string(var); }};
        });
    }
    SUBCASE("linear forward") {
        // corr = (r s2 + mu^2) / (s2 + mu^2): the weights are independent of the input, so
        // the output covariance is d sigma^2 E[x_i x_j], affine and increasing in r.
        check_monotone(curves(0.01), 24, -1, 1, [](sampler& r) {
            const double mu = r.mean(), var = r.var();
            return std::pair{[=](double c) {
                                 return forward(linear<double>{16, 16, 0.5}, signal<double>{mu, var, c}).corr;
                             },
                             [=] { return "linear mean " + std::to_string(mu) + " var " + std::to_string(var); }};
        });
    }
}

TEST_CASE("reliability: dropout's output variance grows with p") {
    // E[(m x / (1 - p))^2] = E[x^2] / (1 - p) for a keep mask m ~ Bernoulli(1 - p): the
    // second moment, hence the variance (the mean is unchanged), is increasing in p.
    check_monotone(curves(0.01), 25, 0, 0.999, [](sampler& r) {
        const double mu = r.mean(), var = r.var();
        return std::pair{[=](double p) { return forward(dropout<double>{p}, signal<double>{mu, var, 0.5}).var; },
                         [=] { return "dropout mean " + std::to_string(mu) + " var " + std::to_string(var); }};
    });
}
