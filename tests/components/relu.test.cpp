#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <doctest/doctest.h>

#include "sigprop/components/relu.hpp"
#include "sigprop/validation/components/relu.hpp"
#include "support/agreement.hpp"
#include "support/component_checks.hpp"
#include "support/gaussian_quadrature.hpp"

using namespace sigprop;

namespace {

using test::real;

// Reference moments of relu by quadrature (no closed form involved).
struct relu_reference {
    real mean, var, cov, pos, both;
};

struct reference_point {
    double mu, var, r;
    relu_reference ref;
};

relu_reference relu_by_quadrature(real mu, real var, real r) {
    const auto f = [](real x) { return x > 0 ? x : real(0); };
    const auto step = [](real x) { return x > 0 ? real(1) : real(0); };
    const test::normal_law law{mu, var, {0}};
    const real mean = test::expect(f, law);
    const real second = test::expect([&](real x) { return f(x) * f(x); }, law);
    const real cross = test::expect(f, f, law, law, r);
    return {mean, second - mean * mean, cross - mean * mean, test::expect(step, law),
            test::expect(step, step, law, law, r)};
}

// The grid keeps |mean / sd| <= 8 so that the quadrature (over |z| <= 14) resolves the tail.
// Computed once and shared by the three scalar types.
const std::vector<reference_point>& reference_grid() {
    static const std::vector<reference_point> grid = [] {
        std::vector<reference_point> g;
        for (double mu : {-4.0, -1.5, -0.3, 0.0, 0.3, 1.5, 4.0})
            for (double var : {0.25, 30.0})
                for (double r : {-1.0, -0.7, 0.0, 0.4, 0.95, 1.0})
                    g.push_back({mu, var, r, relu_by_quadrature(mu, var, r)});
        return g;
    }();
    return grid;
}

template <class T>
double tolerance() {
    return std::is_same_v<T, float> ? 2e-6 : 1e-12;
}

}  // namespace

TEST_CASE_TEMPLATE("relu: exact values at zero mean (paper Table 1)", T, float, double, long double) {
    const signal<T> x{T(0), T(2), T(0.5)};
    const auto y = forward(relu<T>{}, x);
    const double pi = 3.14159265358979323846;
    CHECK(double(y.mean) == doctest::Approx(std::sqrt(2.0 / (2 * pi))).epsilon(1e-6));
    CHECK(double(y.var) == doctest::Approx(2.0 * (pi - 1) / (2 * pi)).epsilon(1e-6));
    // cov = s2/(2 pi) (pi r + sqrt(1 - r^2) - r arccos r - 1) with arccos(1/2) = pi/3.
    const double cov = 2.0 / (2 * pi) * (pi / 2 + std::sqrt(0.75) - pi / 6 - 1);
    CHECK(double(y.corr * y.var) == doctest::Approx(cov).epsilon(1e-6));
    const auto g = backward(relu<T>{}, x, gradient<T>{T(3), T(0.4)});
    CHECK(double(g.var) == doctest::Approx(1.5).epsilon(1e-6));
    // g cov = (1/4 + asin(1/2) / (2 pi)) s2_g r_g = (1/4 + 1/12) * 1.2.
    CHECK(double(g.corr * g.var) == doctest::Approx((0.25 + 1.0 / 12) * 1.2).epsilon(1e-6));
}

TEST_CASE_TEMPLATE("relu: agrees with quadrature for any mean", T, float, double, long double) {
    for (const auto& [mu, var, r, ref] : reference_grid()) {
                const signal<T> x{T(mu), T(var), T(r)};
                const auto y = forward(relu<T>{}, x);
                const auto g = backward(relu<T>{}, x, gradient<T>{T(1), T(1)});
                INFO("mu = " << mu << ", var = " << var << ", r = " << r);
                const double tol = tolerance<T>();
                const double scale = double(ref.var) + double(ref.mean * ref.mean);
                CHECK(std::abs(double(y.mean) - double(ref.mean)) <= tol * std::sqrt(scale));
                CHECK(std::abs(double(y.var) - double(ref.var)) <= tol * double(ref.var));
                CHECK(std::abs(double(y.corr * y.var) - double(ref.cov)) <= tol * double(ref.var));
                CHECK(std::abs(double(g.var) - double(ref.pos)) <= tol * double(ref.pos));
                CHECK(std::abs(double(g.corr * g.var) - double(ref.both)) <= tol * double(ref.pos));
    }
}

TEST_CASE("relu: limits") {
    SUBCASE("uncorrelated input gives uncorrelated output, for any mean") {
        for (double mu : {-2.0, 0.0, 0.7, 5.0}) {
            CHECK(std::abs(forward(relu<double>{}, signal<double>{mu, 1, 0}).corr) < 1e-13);
            const auto g = backward(relu<double>{}, signal<double>{mu, 1, 0}, gradient<double>{1, 0.5});
            CHECK(g.corr == doctest::Approx(0.5 * 0.5 * (1 + std::erf(mu / std::sqrt(2.0)))).epsilon(1e-13));
        }
    }
    SUBCASE("r -> 1: corr -> 1 with slope pi / (pi - 1) at zero mean") {
        const double pi = 3.14159265358979323846;
        CHECK(forward(relu<double>{}, signal<double>{0, 1, 1}).corr == 1);
        const double eps = 1e-8;
        const auto y = forward(relu<double>{}, signal<double>{0, 1, 1 - eps});
        CHECK((1 - y.corr) / eps == doctest::Approx(pi / (pi - 1)).epsilon(1e-4));
        const auto g = backward(relu<double>{}, signal<double>{0, 1, 1 - eps}, gradient<double>{1, 1});
        CHECK(g.corr == doctest::Approx(1).epsilon(1e-3));
    }
    SUBCASE("r = -1 at zero mean: the two outputs are never both positive") {
        const auto y = forward(relu<double>{}, signal<double>{0, 1, -1});
        const double pi = 3.14159265358979323846;
        CHECK(y.corr == doctest::Approx(-1 / (pi - 1)).epsilon(1e-13));
        CHECK(backward(relu<double>{}, signal<double>{0, 1, -1}, gradient<double>{1, 1}).corr == 0);
    }
    SUBCASE("a large positive mean makes relu the identity") {
        const auto y = forward(relu<double>{}, signal<double>{40, 1, 0.3});
        CHECK(y.mean == doctest::Approx(40).epsilon(1e-15));
        CHECK(y.var == doctest::Approx(1).epsilon(1e-15));
        CHECK(y.corr == doctest::Approx(0.3).epsilon(1e-15));
    }
    SUBCASE("a large negative mean zeroes the output and decorrelates it (r < 1)") {
        const auto y = forward(relu<double>{}, signal<double>{-8, 1, 0.5});
        CHECK(y.mean < 1e-15);
        CHECK(y.corr < 1e-3);
        CHECK(y.corr >= 0);
        // Past the double density's underflow (m ~ -38.6) the tail is still evaluated (long
        // double): the true value here is ~1e-261, the covariance's cancellation leaves
        // ~1e-10 (docs/RELIABILITY.md, defect 9). Past long double's (m ~ -150), the limit.
        CHECK(std::abs(forward(relu<double>{}, signal<double>{-60, 1, 0.5}).corr) < 1e-9);
        CHECK(forward(relu<double>{}, signal<double>{-60, 1, 1}).corr == 1);
        CHECK(forward(relu<double>{}, signal<double>{-200, 1, 0.5}).corr == 0);
        CHECK(forward(relu<double>{}, signal<double>{-200, 1, 1}).corr == 1);
    }
    SUBCASE("zero variance: a constant input, corr at its limit") {
        const auto p = forward(relu<double>{}, signal<double>{2, 0, 0.4});
        CHECK(p.mean == 2);
        CHECK(p.var == 0);
        CHECK(p.corr == doctest::Approx(0.4));
        const auto n = forward(relu<double>{}, signal<double>{-2, 0, 0.4});
        CHECK(n.mean == 0);
        CHECK(n.var == 0);
        CHECK(n.corr == 0);
        const auto z = forward(relu<double>{}, signal<double>{0, 0, 0.4});
        CHECK(z.var == 0);
        CHECK(z.corr == doctest::Approx(forward(relu<double>{}, signal<double>{0, 1, 0.4}).corr));
        CHECK(backward(relu<double>{}, signal<double>{-2, 0, 0.4}, gradient<double>{1, 0.5}).var == 0);
        CHECK(backward(relu<double>{}, signal<double>{2, 0, 0.4}, gradient<double>{1, 0.5}).corr == doctest::Approx(0.5));
    }
    SUBCASE("tiny and huge variances scale exactly") {
        for (double v : {1e-300, 1e300}) {
            const auto y = forward(relu<double>{}, signal<double>{0, v, 0.5});
            const auto u = forward(relu<double>{}, signal<double>{0, 1, 0.5});
            CHECK(y.var / v == doctest::Approx(u.var).epsilon(1e-14));
            CHECK(y.corr == doctest::Approx(u.corr).epsilon(1e-14));
        }
    }
    SUBCASE("the paper form equals the best form at zero mean") {
        for (double r : {-1.0, -0.5, 0.0, 0.3, 0.9, 1.0}) {
            const signal<double> x{0, 1.7, r};
            const auto a = forward(relu<double>{form::paper}, x);
            const auto b = forward(relu<double>{}, x);
            CHECK(a.mean == doctest::Approx(b.mean).epsilon(1e-14));
            CHECK(a.var == doctest::Approx(b.var).epsilon(1e-14));
            CHECK(std::abs(a.corr - b.corr) < 1e-14);
            const gradient<double> g{0.8, 0.6};
            CHECK(std::abs(backward(relu<double>{form::paper}, x, g).corr - backward(relu<double>{}, x, g).corr) < 1e-14);
        }
    }
}

TEST_CASE_TEMPLATE("relu: random valid inputs give finite, valid moments", T, float, double, long double) {
    std::mt19937_64 rng(12345);
    std::uniform_real_distribution<double> unit(0, 1);
    const double max_exp = std::is_same_v<T, float> ? 30 : 250;
    auto magnitude = [&] { return std::pow(10.0, (2 * unit(rng) - 1) * max_exp); };
    for (int i = 0; i < 3000; ++i) {
        const double mu = i % 7 == 0 ? 0.0 : (unit(rng) < 0.5 ? -1 : 1) * magnitude();
        const double var = i % 11 == 0 ? 0.0 : magnitude();
        const double r = i % 13 == 0 ? (i % 2 ? 1.0 : -1.0) : 2 * unit(rng) - 1;
        const signal<T> x{T(mu), T(var), T(r)};
        const auto y = forward(relu<T>{}, x);
        const auto g = backward(relu<T>{}, x, gradient<T>{T(magnitude()), T(2 * unit(rng) - 1)});
        INFO("mu = " << mu << ", var = " << var << ", r = " << r);
        test::check_valid_moments(y, g);
        CHECK(y.mean >= T(0));
    }
}

TEST_CASE("relu: bad input throws sigprop::invalid_argument naming the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<test::bad_input<relu<double>>> table{
        {{}, {nan, 1, 0}, {}, "sigprop::relu: x.mean = nan is outside the valid range (-inf, inf) (finite)"},
        {{}, {inf, 1, 0}, {}, "sigprop::relu: x.mean = inf is outside the valid range (-inf, inf) (finite)"},
        {{}, {0, -1, 0}, {}, "sigprop::relu: x.var = -1 is outside the valid range [0, inf) (finite)"},
        {{}, {0, inf, 0}, {}, "sigprop::relu: x.var = inf is outside the valid range [0, inf) (finite)"},
        {{}, {0, nan, 0}, {}, "sigprop::relu: x.var = nan is outside the valid range [0, inf) (finite)"},
        {{}, {0, 1, 1.5}, {}, "sigprop::relu: x.corr = 1.5 is outside the valid range [-1, 1]"},
        {{}, {0, 1, -inf}, {}, "sigprop::relu: x.corr = -inf is outside the valid range [-1, 1]"},
        {{}, {0, 1, nan}, {}, "sigprop::relu: x.corr = nan is outside the valid range [-1, 1]"},
        {{form::paper}, {0.5, 1, 0}, {}, "sigprop::relu: x.mean = 0.5 is outside the valid range {0}"},
        {{form::paper_large_l}, {0, 1, 0}, {}, "sigprop::relu: form = paper_large_l is outside the valid range {best, paper}"},
        {{}, {0, 1, 0}, {-2, 0}, "sigprop::relu: g.var = -2 is outside the valid range [0, inf) (finite)"},
        {{}, {0, 1, 0}, {inf, 0}, "sigprop::relu: g.var = inf is outside the valid range [0, inf) (finite)"},
        {{}, {0, 1, 0}, {1, -1.25}, "sigprop::relu: g.corr = -1.25 is outside the valid range [-1, 1]"},
        {{}, {0, 1, 0}, {1, nan}, "sigprop::relu: g.corr = nan is outside the valid range [-1, 1]"},
    };
    test::check_bad_inputs(table);
}

TEST_CASE("relu: the hand-written Monte-Carlo backward matches finite differences") {
    Eigen::MatrixXd x(3, 2), g(3, 2);
    x << 0.7, -1.2, 0.3, 2.0, -0.4, 1.1;
    g << 0.5, -0.3, 1.5, 0.8, -1.0, 0.2;
    validation::relu_model m;
    test::check_backward_by_finite_differences(m, x, g, 1e-6);
}

TEST_CASE("relu: agrees with the Monte-Carlo validator") {
    // Zero mean (the paper's setting), a negative and a positive mean, a negative r.
    test::check_agrees_with_validator(
        relu<double>{}, {{{0.0, 1.7, 0.6}, {0.8, 0.3}}, {{-0.8, 0.5, 0.3}, {1.2, 0.7}}, {{1.2, 2.0, -0.1}, {0.6, 0.5}}},
        11, 10);
}
