#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include <doctest/doctest.h>

#include "sigprop/components/dropout.hpp"
#include "sigprop/validation/components/dropout.hpp"
#include "support/agreement.hpp"

using namespace sigprop;

TEST_CASE_TEMPLATE("dropout: exact values", T, float, double, long double) {
    // p = 1/2, mu = 2, s2 = 3, r = 1/2: E[y^2] = 2 (3 + 4) = 14, var = 14 - 4 = 10,
    // cov = 1.5, corr = 0.15; gradient: var 2 * 2 = 4, cov 0.25 * 2 = 0.5, corr 0.125.
    const dropout<T> c{T(0.5)};
    const signal<T> x{T(2), T(3), T(0.5)};
    const auto y = forward(c, x);
    CHECK(y.mean == T(2));
    CHECK(double(y.var) == doctest::Approx(10.0).epsilon(1e-6));
    CHECK(double(y.corr) == doctest::Approx(0.15).epsilon(1e-6));
    const auto g = backward(c, x, gradient<T>{T(2), T(0.25)});
    CHECK(double(g.var) == doctest::Approx(4.0).epsilon(1e-6));
    CHECK(double(g.corr) == doctest::Approx(0.125).epsilon(1e-6));

    // p = 0.2, mu = -1, s2 = 0.5, r = -0.3: var = (0.5 + 0.2) / 0.8 = 0.875,
    // corr = -0.15 / 0.875; gradient corr = 0.9 * 0.8 = 0.72.
    const auto y2 = forward(dropout<T>{T(0.2)}, signal<T>{T(-1), T(0.5), T(-0.3)});
    CHECK(double(y2.var) == doctest::Approx(0.875).epsilon(1e-6));
    CHECK(double(y2.corr) == doctest::Approx(-0.15 / 0.875).epsilon(1e-6));
    const auto g2 = backward(dropout<T>{T(0.2)}, x, gradient<T>{T(1), T(0.9)});
    CHECK(double(g2.var) == doctest::Approx(1.25).epsilon(1e-6));
    CHECK(double(g2.corr) == doctest::Approx(0.72).epsilon(1e-6));
}

TEST_CASE_TEMPLATE("dropout: limits and extremes", T, float, double, long double) {
    const T inf = std::numeric_limits<T>::infinity();
    const T big = std::numeric_limits<T>::max() / T(4);
    const T tiny = std::numeric_limits<T>::min();
    SUBCASE("p = 0 is the identity, bit for bit") {
        const signal<T> x{T(-3.25), T(0.7), T(0.4)};
        const auto y = forward(dropout<T>{T(0)}, x);
        CHECK(y.mean == x.mean);
        CHECK(y.var == x.var);
        CHECK(y.corr == x.corr);
        const auto g = backward(dropout<T>{T(0)}, x, gradient<T>{T(1.5), T(-0.2)});
        CHECK(g.var == T(1.5));
        CHECK(g.corr == T(-0.2));
    }
    SUBCASE("p = 0 with a huge mean does not meet as 0 * inf") {
        const auto y = forward(dropout<T>{T(0)}, signal<T>{big, tiny, T(0.5)});
        CHECK(y.var == tiny);
        CHECK(y.corr == T(0.5));
    }
    SUBCASE("p -> 1: the variance grows like 1 / (1 - p), the correlations vanish") {
        const T p = T(1) - std::numeric_limits<T>::epsilon();
        const auto y = forward(dropout<T>{p}, signal<T>{T(0), T(1), T(1)});
        CHECK(double(y.var) == doctest::Approx(1.0 / double(std::numeric_limits<T>::epsilon())).epsilon(1e-6));
        CHECK(double(y.corr) == doctest::Approx(double(std::numeric_limits<T>::epsilon())).epsilon(1e-6));
        const auto g = backward(dropout<T>{p}, signal<T>{}, gradient<T>{T(2), T(1)});
        CHECK(double(g.corr) == doctest::Approx(double(std::numeric_limits<T>::epsilon())).epsilon(1e-6));
    }
    SUBCASE("overflow of the variance is +infinity and the correlation is 0, not NaN") {
        const auto y = forward(dropout<T>{T(0.5)}, signal<T>{big, big, T(1)});
        CHECK(y.var == inf);
        CHECK(y.mean == big);
        // corr = 0.5 / (1 + 0.5 mu^2 / s2) with mu^2 / s2 = big: tiny but exact.
        CHECK(double(y.corr) == doctest::Approx(1.0 / double(big)).epsilon(1e-5));
        const auto g = backward(dropout<T>{T(0.875)}, signal<T>{}, gradient<T>{big, T(0.5)});
        CHECK(g.var == inf);
        CHECK(g.corr == T(0.0625));
    }
    SUBCASE("a huge mean against a tiny variance: mask noise dominates") {
        const auto y = forward(dropout<T>{T(0.1)}, signal<T>{big, tiny, T(1)});
        CHECK(y.var == inf);
        CHECK(y.corr == T(0));
    }
    SUBCASE("zero variance: the limiting correlation") {
        const auto a = forward(dropout<T>{T(0.25)}, signal<T>{T(0), T(0), T(0.8)});
        CHECK(a.var == T(0));
        CHECK(double(a.corr) == doctest::Approx(0.6));
        const auto b = forward(dropout<T>{T(0.25)}, signal<T>{T(2), T(0), T(0.8)});
        CHECK(double(b.var) == doctest::Approx(4.0 / 3.0));  // (0 + 0.25 * 4) / 0.75
        CHECK(b.corr == T(0));
        const auto g = backward(dropout<T>{T(0.25)}, signal<T>{}, gradient<T>{T(0), T(-1)});
        CHECK(g.var == T(0));
        CHECK(double(g.corr) == doctest::Approx(-0.75));
    }
    SUBCASE("tiny variances keep full relative accuracy") {
        const T s2 = tiny * T(8);
        const auto y = forward(dropout<T>{T(0.5)}, signal<T>{T(0), s2, T(0.5)});
        CHECK(y.var == s2 * T(2));
        CHECK(y.corr == T(0.25));
    }
}

TEST_CASE_TEMPLATE("dropout: property sweep over random valid inputs", T, float, double, long double) {
    // Random inputs over many decades; the prediction must be finite (or +inf for the
    // variance), non-negative, a valid correlation, and equal to the textbook form
    // E[y^2] - mu^2 evaluated in long double wherever that form is safe.
    std::mt19937_64 rng(12345);
    std::uniform_real_distribution<double> u(0, 1);
    for (int n = 0; n < 4000; ++n) {
        const double pexp = -12 * u(rng);
        T p = n % 7 == 0 ? T(0) : T(n % 2 ? std::pow(10.0, pexp) : 1 - std::pow(10.0, pexp));
        if (p >= T(1)) p = std::nextafter(T(1), T(0));  // 1 - 1e-12 rounds to 1 in float
        const T mu = T((u(rng) - 0.5) * std::pow(10.0, 30 * u(rng) - 15));
        const T s2 = n % 11 == 0 ? T(0) : T(std::pow(10.0, 30 * u(rng) - 15));
        const T r = n % 13 == 0 ? T(n % 2 ? 1 : -1) : T(2 * u(rng) - 1);
        const auto y = forward(dropout<T>{p}, signal<T>{mu, s2, r});
        const auto g = backward(dropout<T>{p}, signal<T>{mu, s2, r}, gradient<T>{s2, r});
        INFO("p = " << double(p) << ", mu = " << double(mu) << ", s2 = " << double(s2) << ", r = " << double(r));
        REQUIRE(!std::isnan(double(y.var)));
        REQUIRE(!std::isnan(double(y.corr)));
        REQUIRE(!std::isnan(double(g.var)));
        REQUIRE(!std::isnan(double(g.corr)));
        CHECK(y.var >= T(0));
        CHECK(g.var >= T(0));
        CHECK(std::abs(double(y.corr)) <= 1.0);
        CHECK(std::abs(double(g.corr)) <= 1.0);
        CHECK(y.mean == mu);
        using L = long double;
        const L keep = L(1) - L(p);
        const L var = (L(s2) + L(mu) * L(mu)) / keep - L(mu) * L(mu);
        // A few rounding errors of T; the long double reference carries a cancellation
        // error of about eps(long double) mu^2 / var, which the check allows for.
        const L tol = 8 * L(std::numeric_limits<T>::epsilon()) +
                      8 * std::numeric_limits<L>::epsilon() * L(mu) * L(mu) / var;
        if (var > 0 && var < L(std::numeric_limits<T>::max()) && var > L(std::numeric_limits<T>::min())) {
            CHECK(std::abs(L(y.var) - var) <= tol * var);
            CHECK(std::abs(L(y.corr) - L(r) * L(s2) / var) <= tol);
        }
    }
}

TEST_CASE("dropout: bad input throws sigprop::invalid_argument naming the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    struct row {
        double p;
        signal<double> x;
        gradient<double> g;
        const char* message;  // the full message where the row pins it down
    };
    const row rows[] = {
        {1.0, {}, {}, "sigprop::dropout: p = 1 is outside the valid range [0, 1)"},
        {-0.1, {}, {}, "sigprop::dropout: p = -0.10000000000000001 is outside the valid range [0, 1)"},
        {1.5, {}, {}, nullptr},
        {nan, {}, {}, "sigprop::dropout: p = nan is outside the valid range [0, 1)"},
        {inf, {}, {}, nullptr},
        {-inf, {}, {}, nullptr},
        {0.5, {nan, 1, 0}, {}, "sigprop::dropout: x.mean = nan is outside the valid range (-inf, inf) (finite)"},
        {0.5, {inf, 1, 0}, {}, nullptr},
        {0.5, {-inf, 1, 0}, {}, nullptr},
        {0.5, {0, -1, 0}, {}, "sigprop::dropout: x.var = -1 is outside the valid range [0, inf) (finite)"},
        {0.5, {0, inf, 0}, {}, nullptr},
        {0.5, {0, nan, 0}, {}, nullptr},
        {0.5, {0, 1, 1.5}, {}, "sigprop::dropout: x.corr = 1.5 is outside the valid range [-1, 1]"},
        {0.5, {0, 1, -1.0000001}, {}, nullptr},
        {0.5, {0, 1, nan}, {}, nullptr},
        {0.5, {}, {-1, 0}, "sigprop::dropout: g.var = -1 is outside the valid range [0, inf) (finite)"},
        {0.5, {}, {inf, 0}, nullptr},
        {0.5, {}, {nan, 0}, nullptr},
        {0.5, {}, {1, 2}, "sigprop::dropout: g.corr = 2 is outside the valid range [-1, 1]"},
        {0.5, {}, {1, nan}, nullptr},
    };
    for (const auto& r : rows) {
        INFO("p = " << r.p << ", x = (" << r.x.mean << ", " << r.x.var << ", " << r.x.corr << "), g = ("
                    << r.g.var << ", " << r.g.corr << ")");
        const dropout<double> c{r.p};
        const bool forward_bad = !(r.p >= 0 && r.p < 1) || !std::isfinite(r.x.mean) || !std::isfinite(r.x.var) ||
                                 r.x.var < 0 || !(std::abs(r.x.corr) <= 1);
        if (forward_bad) CHECK_THROWS_AS(forward(c, r.x), sigprop::invalid_argument);
        CHECK_THROWS_AS(backward(c, r.x, r.g), sigprop::invalid_argument);
        if (r.message) CHECK_THROWS_WITH(backward(c, r.x, r.g), r.message);
    }
    CHECK_NOTHROW(forward(dropout<double>{0.0}, signal<double>{}));
    CHECK_NOTHROW(backward(dropout<double>{0.999}, signal<double>{}, gradient<double>{}));
}

TEST_CASE("dropout: the model's hand-written backward matches finite differences") {
    // The loss is sum(Y * G); the same stream key reproduces the same mask.
    const dropout<double> c{0.4};
    const validation::run_options o{99, 3, 2, 2};
    Eigen::MatrixXd x = Eigen::MatrixXd::Random(3, 4), gy = Eigen::MatrixXd::Random(3, 4);
    auto loss = [&](const Eigen::MatrixXd& in) {
        validation::dropout_model m{c, {}};
        auto st = validation::streams_for(o, 0);
        return m.forward(st, in).cwiseProduct(gy).sum();
    };
    validation::dropout_model m{c, {}};
    auto st = validation::streams_for(o, 0);
    m.forward(st, x);
    const Eigen::MatrixXd dx = m.backward(gy);
    CHECK((m.scale.array() == 0).any());  // the mask drops something at this size and seed
    const double h = 1e-6;
    for (Eigen::Index n = 0; n < x.size(); ++n) {
        Eigen::MatrixXd a = x, b = x;
        a.data()[n] += h;
        b.data()[n] -= h;
        CHECK(dx.data()[n] == doctest::Approx((loss(a) - loss(b)) / (2 * h)).epsilon(1e-7));
    }
}

TEST_CASE("dropout: agrees with the Monte-Carlo validator") {
    struct point {
        double p;
        signal<double> x;
        gradient<double> g;
    };
    const point points[] = {
        {2.0 / 3, {10, 3.16, 2.0 / 3}, {0.3, 1.0 / 3}},
        {1.0 / 3, {0, 1, 0}, {1, 2.0 / 3}},
        {0.0, {-10, 0.316, 1.0 / 3}, {3, 0}},
        {0.9, {1, 1, -0.1}, {1, -0.1}},
        {0.5, {0, 1, 0.9}, {2, 0.9}},
    };
    std::uint32_t experiment = 0;
    for (const auto& pt : points) {
        INFO("p = " << pt.p << ", mu = " << pt.x.mean);
        const dropout<double> c{pt.p};
        validation::experiment_input in;
        in.x = pt.x;
        in.g = pt.g;
        in.tokens = 8;
        in.width = 64;
        const auto m = validation::measure(c, in, validation::run_options{11, experiment++, 2000, 20});
        const auto y = forward(c, in.x);
        const auto g = backward(c, in.x, in.g);
        test::check_agrees("x mean", y.mean, m.y.mean);
        test::check_agrees("x var", y.var, m.y.var);
        test::check_agrees("x cov", y.corr * y.var, m.y.cov);
        test::check_agrees("g var", g.var, m.g.var);
        test::check_agrees("g cov", g.corr * g.var, m.g.cov);
    }
}
