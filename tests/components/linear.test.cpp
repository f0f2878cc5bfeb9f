#include <cmath>
#include <limits>

#include <doctest/doctest.h>

#include "sigprop/components/linear.hpp"
#include "sigprop/validation/components/linear.hpp"
#include "support/agreement.hpp"

using namespace sigprop;

TEST_CASE_TEMPLATE("linear: exact values", T, float, double, long double) {
    const linear<T> c{100, 300, T(0.1)};
    const signal<T> x{T(2), T(3), T(0.5)};
    const auto y = forward(c, x);
    // d_in sigma^2 (s2 + mu^2) = 100 * 0.01 * 7; corr = (0.5 * 3 + 4) / 7.
    CHECK(y.mean == T(0));
    CHECK(double(y.var) == doctest::Approx(7.0).epsilon(1e-6));
    CHECK(double(y.corr) == doctest::Approx(5.5 / 7.0).epsilon(1e-6));
    const auto g = backward(c, x, gradient<T>{T(2), T(0.25)});
    CHECK(double(g.var) == doctest::Approx(300 * 0.01 * 2).epsilon(1e-6));
    CHECK(g.corr == T(0.25));
}

TEST_CASE("linear: limits and extremes") {
    SUBCASE("sigma_w -> 0 gives zero variance and keeps the correlation's limit") {
        const auto y = forward(linear<double>{10, 10, 0.0}, signal<double>{1, 1, 0.2});
        CHECK(y.var == 0);
        CHECK(y.corr == doctest::Approx(0.6));
    }
    SUBCASE("a huge mean with a tiny weight does not meet as 0 * inf") {
        const auto y = forward(linear<double>{1, 1, 1e-200}, signal<double>{1e200, 1, 0});
        CHECK(y.var == doctest::Approx(1.0));
        CHECK(y.corr == doctest::Approx(1.0));
    }
    SUBCASE("overflow is +infinity, never NaN") {
        const auto y = forward(linear<double>{1000, 1000, 1e200}, signal<double>{1e200, 1e300, 0.5});
        CHECK(y.var == std::numeric_limits<double>::infinity());
        CHECK(y.corr == doctest::Approx(1.0));
    }
    SUBCASE("zero input") {
        const auto y = forward(linear<double>{4, 4, 1.0}, signal<double>{0, 0, 0.3});
        CHECK(y.var == 0);
        CHECK(y.corr == doctest::Approx(0.3));
    }
}

TEST_CASE("linear: bad input throws sigprop::invalid_argument naming the problem") {
    const signal<double> x{};
    const gradient<double> g{};
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    CHECK_THROWS_WITH_AS(forward(linear<double>{0, 1, 1.0}, x),
                         "sigprop::linear: d_in = 0 is outside the valid range [1, inf)",
                         sigprop::invalid_argument);
    CHECK_THROWS_AS(forward(linear<double>{1, -3, 1.0}, x), sigprop::invalid_argument);
    CHECK_THROWS_AS(forward(linear<double>{1, 1, -1.0}, x), sigprop::invalid_argument);
    CHECK_THROWS_AS(forward(linear<double>{1, 1, nan}, x), sigprop::invalid_argument);
    CHECK_THROWS_AS(forward(linear<double>{1, 1, inf}, x), sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(forward(linear<double>{1, 1, 1.0}, signal<double>{0, 1, 1.5}),
                         "sigprop::linear: x.corr = 1.5 is outside the valid range [-1, 1]",
                         sigprop::invalid_argument);
    CHECK_THROWS_AS(forward(linear<double>{1, 1, 1.0}, signal<double>{nan, 1, 0}), sigprop::invalid_argument);
    CHECK_THROWS_AS(forward(linear<double>{1, 1, 1.0}, signal<double>{0, -1, 0}), sigprop::invalid_argument);
    CHECK_THROWS_AS(forward(linear<double>{1, 1, 1.0}, signal<double>{0, inf, 0}), sigprop::invalid_argument);
    CHECK_THROWS_AS(backward(linear<double>{1, 1, 1.0}, x, gradient<double>{-1, 0}), sigprop::invalid_argument);
    CHECK_THROWS_AS(backward(linear<double>{1, 1, 1.0}, x, gradient<double>{1, nan}), sigprop::invalid_argument);
    CHECK_NOTHROW(backward(linear<double>{1, 1, 1.0}, x, g));
}

TEST_CASE("linear: agrees with the Monte-Carlo validator") {
    const linear<double> c{64, 48, 0.15};
    validation::experiment_input in;
    in.x = {0.7, 1.3, 0.4};
    in.g = {0.8, 0.3};
    in.tokens = 8;
    const auto m = validation::measure(c, in, validation::run_options{7, 1, 200, 20});
    const auto y = forward(c, in.x);
    const auto g = backward(c, in.x, in.g);
    test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", g.var, m.g.var);
    test::check_agrees("g cov", g.corr * g.var, m.g.cov);
}
