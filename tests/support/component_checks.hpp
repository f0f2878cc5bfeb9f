#pragma once
// Test checks shared by the element-wise activation components (relu, gelu): their
// rejection of bad input, their Monte-Carlo model's hand-written backward against central
// finite differences, and their prediction against the Monte-Carlo validator.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>
#include <doctest/doctest.h>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"
#include "sigprop/validation/experiment.hpp"
#include "support/agreement.hpp"

namespace sigprop::test {

/// One invalid (component, input, gradient) and the exact message it must throw.
/// What every prediction must satisfy for a valid input: finite, non-negative variances and
/// correlations in [-1, 1] (the mean only finite: components decide its sign).
template <class T>
void check_valid_moments(const signal<T>& y, const gradient<T>& g) {
    CHECK(std::isfinite(double(y.mean)));
    CHECK(std::isfinite(double(y.var)));
    CHECK(y.var >= T(0));
    CHECK(std::abs(double(y.corr)) <= 1.0);
    CHECK(std::isfinite(double(g.var)));
    CHECK(g.var >= T(0));
    CHECK(std::abs(double(g.corr)) <= 1.0);
}

template <class C>
struct bad_input {
    C c;
    signal<double> x;
    gradient<double> g;
    const char* message;
};

/// forward (unless the problem is in the gradient) and backward throw
/// sigprop::invalid_argument with exactly b.message.
template <class C>
void check_bad_inputs(const std::vector<bad_input<C>>& table) {
    for (const auto& b : table) {
        INFO(b.message);
        const bool gradient_problem = std::string(b.message).find(": g.") != std::string::npos;
        if (!gradient_problem) CHECK_THROWS_WITH_AS(forward(b.c, b.x), b.message, sigprop::invalid_argument);
        CHECK_THROWS_WITH_AS(backward(b.c, b.x, b.g), b.message, sigprop::invalid_argument);
    }
}

/// The model's backward for the loss sum(forward(x) * g) against central differences of step h.
template <class Model>
void check_backward_by_finite_differences(Model& m, const Eigen::MatrixXd& x, const Eigen::MatrixXd& g, double h) {
    validation::sequence_streams st = validation::streams_for(validation::run_options{}, 0);
    m.forward(st, x);
    const Eigen::MatrixXd dx = m.backward(g);
    for (Eigen::Index k = 0; k < x.size(); ++k) {
        Eigen::MatrixXd xp = x, xm = x;
        xp.data()[k] += h;
        xm.data()[k] -= h;
        const double fd = (m.forward(st, xp).cwiseProduct(g).sum() - m.forward(st, xm).cwiseProduct(g).sum()) / (2 * h);
        CHECK(dx.data()[k] == doctest::Approx(fd).epsilon(1e-8));
    }
}

/// An input point of an experiment: the input's moments and the output gradient's.
struct moments_point {
    signal<double> x;
    gradient<double> g;
};

/// forward and backward of c agree with validation::measure (tokens 8, width 256, 400
/// sequences in 20 blocks, experiment ids first_id, first_id + 1, ... under `seed`) at each
/// point: mean, variance and covariance of the output and variance and covariance of the
/// input gradient.
template <class C>
void check_agrees_with_validator(const C& c, const std::vector<moments_point>& points, std::uint64_t seed,
                                 std::uint32_t first_id) {
    std::uint32_t id = first_id;
    for (const auto& p : points) {
        validation::experiment_input in;
        in.x = p.x;
        in.g = p.g;
        in.tokens = 8;
        in.width = 256;
        const auto m = measure(c, in, validation::run_options{seed, id++, 400, 20});  // ADL: validation::
        const auto y = forward(c, in.x);
        const auto g = backward(c, in.x, in.g);
        INFO("x = (" << p.x.mean << ", " << p.x.var << ", " << p.x.corr << ")");
        check_agrees("x mean", y.mean, m.y.mean);
        check_agrees("x var", y.var, m.y.var);
        check_agrees("x cov", y.corr * y.var, m.y.cov);
        check_agrees("g var", g.var, m.g.var);
        check_agrees("g cov", g.corr * g.var, m.g.cov);
    }
}

}  // namespace sigprop::test
