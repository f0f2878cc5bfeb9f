#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "sigprop/components/gelu.hpp"
#include "sigprop/validation/components/gelu.hpp"
#include "support/agreement.hpp"
#include "support/component_checks.hpp"
#include "support/gaussian_quadrature.hpp"

using namespace sigprop;

namespace {

using test::real;

real cdf(real x) { return std::erfc(-x / std::sqrt(real(2))) / 2; }
real pdf(real x) { return std::exp(-x * x / 2) / std::sqrt(2 * 3.141592653589793238462643383279502884L); }

// Reference moments of x Phi(x) and of its slope Phi(x) + x phi(x), by quadrature.
struct gelu_reference {
    real mean, var, cov, slope2, slope_cross;
};

gelu_reference gelu_by_quadrature(real var, real r) {
    const auto f = [](real x) { return x * cdf(x); };
    const auto d = [](real x) { return cdf(x) + x * pdf(x); };
    const test::normal_law law{0, var, {}};
    const real mean = test::expect(f, law);
    const real second = test::expect([&](real x) { return f(x) * f(x); }, law);
    return {mean, second - mean * mean, test::expect(f, f, law, law, r) - mean * mean,
            test::expect([&](real x) { return d(x) * d(x); }, law), test::expect(d, d, law, law, r)};
}

struct reference_point {
    double var, r;
    gelu_reference ref;
};

// Computed once and shared by the three scalar types.
const std::vector<reference_point>& reference_grid() {
    static const std::vector<reference_point> grid = [] {
        std::vector<reference_point> g;
        for (double var : {1e-3, 0.3, 1.0, 3.0, 100.0})
            for (double r : {-1.0, -0.6, 0.0, 0.3, 0.9, 0.999, 1.0})
                g.push_back({var, r, gelu_by_quadrature(var, r)});
        return g;
    }();
    return grid;
}

template <class T>
double tolerance() {
    return std::is_same_v<T, float> ? 2e-6 : 1e-12;
}

}  // namespace

TEST_CASE_TEMPLATE("gelu: agrees with quadrature (every Table 1 formula)", T, float, double, long double) {
    for (const auto& [var, r, ref] : reference_grid()) {
        const signal<T> x{T(0), T(var), T(r)};
        const auto y = forward(gelu<T>{}, x);
        const auto g = backward(gelu<T>{}, x, gradient<T>{T(1), T(1)});
        INFO("var = " << var << ", r = " << r);
        const double tol = tolerance<T>();
        CHECK(std::abs(double(y.mean) - double(ref.mean)) <= tol * double(ref.mean));
        CHECK(std::abs(double(y.var) - double(ref.var)) <= tol * double(ref.var));
        CHECK(std::abs(double(y.corr * y.var) - double(ref.cov)) <= tol * double(ref.var));
        CHECK(std::abs(double(g.var) - double(ref.slope2)) <= tol * double(ref.slope2));
        CHECK(std::abs(double(g.corr * g.var) - double(ref.slope_cross)) <= tol * double(ref.slope2));
    }
}

TEST_CASE("gelu: limits") {
    const double pi = 3.14159265358979323846;
    SUBCASE("q -> 0: GeLU is x/2 near 0") {
        for (double q : {1e-12, 1e-300}) {
            const auto y = forward(gelu<double>{}, signal<double>{0, q, 0.4});
            CHECK(y.var / q == doctest::Approx(0.25).epsilon(1e-9));
            CHECK(y.corr == doctest::Approx(0.4).epsilon(1e-9));
            const auto g = backward(gelu<double>{}, signal<double>{0, q, 0.4}, gradient<double>{2, 0.5});
            CHECK(g.var == doctest::Approx(0.5).epsilon(1e-9));
            CHECK(g.corr == doctest::Approx(0.5).epsilon(1e-9));
        }
        const auto z = forward(gelu<double>{}, signal<double>{0, 0, -0.3});
        CHECK(z.var == 0);
        CHECK(z.corr == doctest::Approx(-0.3));
    }
    SUBCASE("q -> inf: GeLU becomes ReLU (arc-cosine kernel), no overflow") {
        for (double q : {1e12, 1e300, std::numeric_limits<double>::max()}) {
            const double r = 0.5;
            const auto y = forward(gelu<double>{}, signal<double>{0, q, r});
            CHECK(y.var / q == doctest::Approx((pi - 1) / (2 * pi)).epsilon(1e-5));
            const double relu_corr = (pi * r + std::sqrt(1 - r * r) - r * std::acos(r) - 1) / (pi - 1);
            CHECK(y.corr == doctest::Approx(relu_corr).epsilon(1e-5));
            const auto g = backward(gelu<double>{}, signal<double>{0, q, r}, gradient<double>{1, 1});
            CHECK(g.var == doctest::Approx(0.5).epsilon(1e-5));
            CHECK(g.corr == doctest::Approx(0.5 + std::asin(r) / pi).epsilon(1e-5));
            const auto e = forward(gelu<double>{}, signal<double>{0, q, 1});
            CHECK(e.corr == 1);
            CHECK(backward(gelu<double>{}, signal<double>{0, q, 1}, gradient<double>{1, 1}).corr == doctest::Approx(1));
        }
    }
    SUBCASE("r -> 0: the covariance keeps full relative accuracy (slope q E[gelu']^2 = q/4)") {
        const double q = 2.0, r = 1e-10;
        const auto y = forward(gelu<double>{}, signal<double>{0, q, r});
        CHECK(y.corr * y.var / (q * r / 4) == doctest::Approx(1).epsilon(1e-8));
        CHECK(forward(gelu<double>{}, signal<double>{0, q, 0}).corr == 0);
    }
    SUBCASE("r -> 1 and r = -1") {
        CHECK(forward(gelu<double>{}, signal<double>{0, 1, 1}).corr == 1);
        const auto near = forward(gelu<double>{}, signal<double>{0, 1, 1 - 1e-12});
        CHECK(near.corr < 1);
        CHECK(1 - near.corr < 1e-11);
        const auto neg = forward(gelu<double>{}, signal<double>{0, 1, -1});
        CHECK(neg.corr > -1);
        CHECK(neg.corr < 0);
    }
    SUBCASE("form::paper is the same closed form") {
        const signal<double> x{0, 0.7, 0.35};
        CHECK(forward(gelu<double>{form::paper}, x).corr == forward(gelu<double>{}, x).corr);
    }
}

TEST_CASE_TEMPLATE("gelu: random valid inputs give finite, valid moments", T, float, double, long double) {
    std::mt19937_64 rng(4242);
    std::uniform_real_distribution<double> unit(0, 1);
    const double max_exp = std::is_same_v<T, float> ? 37 : 300;
    auto magnitude = [&] { return std::pow(10.0, (2 * unit(rng) - 1) * max_exp); };
    for (int i = 0; i < 3000; ++i) {
        const double var = i % 11 == 0 ? 0.0 : magnitude();
        const double r = i % 13 == 0 ? (i % 2 ? 1.0 : -1.0) : 2 * unit(rng) - 1;
        const signal<T> x{T(0), T(var), T(r)};
        const auto y = forward(gelu<T>{}, x);
        const auto g = backward(gelu<T>{}, x, gradient<T>{T(magnitude()), T(2 * unit(rng) - 1)});
        INFO("var = " << var << ", r = " << r);
        test::check_valid_moments(y, g);
        CHECK(y.mean >= T(0));
    }
}

TEST_CASE("gelu: bad input throws sigprop::invalid_argument naming the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<test::bad_input<gelu<double>>> table{
        {{}, {0.5, 1, 0}, {}, "sigprop::gelu: x.mean = 0.5 is outside the valid range {0}"},
        {{}, {nan, 1, 0}, {}, "sigprop::gelu: x.mean = nan is outside the valid range (-inf, inf) (finite)"},
        {{}, {-inf, 1, 0}, {}, "sigprop::gelu: x.mean = -inf is outside the valid range (-inf, inf) (finite)"},
        {{}, {0, -1, 0}, {}, "sigprop::gelu: x.var = -1 is outside the valid range [0, inf) (finite)"},
        {{}, {0, inf, 0}, {}, "sigprop::gelu: x.var = inf is outside the valid range [0, inf) (finite)"},
        {{}, {0, nan, 0}, {}, "sigprop::gelu: x.var = nan is outside the valid range [0, inf) (finite)"},
        {{}, {0, 1, -1.5}, {}, "sigprop::gelu: x.corr = -1.5 is outside the valid range [-1, 1]"},
        {{}, {0, 1, inf}, {}, "sigprop::gelu: x.corr = inf is outside the valid range [-1, 1]"},
        {{}, {0, 1, nan}, {}, "sigprop::gelu: x.corr = nan is outside the valid range [-1, 1]"},
        {{form::paper_large_l}, {0, 1, 0}, {}, "sigprop::gelu: form = paper_large_l is outside the valid range {best, paper}"},
        {{}, {0, 1, 0}, {-2, 0}, "sigprop::gelu: g.var = -2 is outside the valid range [0, inf) (finite)"},
        {{}, {0, 1, 0}, {nan, 0}, "sigprop::gelu: g.var = nan is outside the valid range [0, inf) (finite)"},
        {{}, {0, 1, 0}, {1, 2}, "sigprop::gelu: g.corr = 2 is outside the valid range [-1, 1]"},
        {{}, {0, 1, 0}, {1, nan}, "sigprop::gelu: g.corr = nan is outside the valid range [-1, 1]"},
    };
    test::check_bad_inputs(table);
}

TEST_CASE("gelu: the hand-written Monte-Carlo backward matches finite differences") {
    Eigen::MatrixXd x(3, 2), g(3, 2);
    x << 0.7, -1.2, 0.0, 2.0, -0.4, 1.1;
    g << 0.5, -0.3, 1.5, 0.8, -1.0, 0.2;
    validation::gelu_model m;
    test::check_backward_by_finite_differences(m, x, g, 1e-5);
}

TEST_CASE("gelu: agrees with the Monte-Carlo validator") {
    test::check_agrees_with_validator(
        gelu<double>{}, {{{0.0, 1.0, 0.6}, {0.8, 0.3}}, {{0.0, 0.3, -0.1}, {1.2, 0.7}}, {{0.0, 3.0, 0.2}, {0.6, 0.5}}},
        13, 20);
}
