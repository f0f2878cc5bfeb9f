#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <doctest/doctest.h>

#include "sigprop/components/softmax.hpp"
#include "sigprop/validation/components/softmax.hpp"
#include "support/agreement.hpp"
#include "support/softmax_reference.hpp"

using namespace sigprop;
namespace ref = sigprop::test::softmax_reference;

namespace {

template <class T>
double rel_tol() {
    // float is computed in double and rounded once; the references limit the others to about 1e-13.
    return std::is_same_v<T, float> ? 1e-6 : 1e-11;
}

template <class T>
void check_moments(int L, double s, const ref::values& r, bool all) {
    const auto m = detail::softmax_moments<T>(L, T(s));
    INFO("L = " << L << ", s = " << s);
    const double tol = rel_tol<T>();
    CHECK(double(m.p2) == doctest::Approx(double(r.p2)).epsilon(tol));
    CHECK(double(m.var) == doctest::Approx(double(r.var)).epsilon(tol));
    CHECK(double(m.grad) == doctest::Approx(double(r.grad)).epsilon(tol));
    if (all) {
        CHECK(double(m.p3) == doctest::Approx(double(r.p3)).epsilon(tol));
        CHECK(double(m.p2q) == doctest::Approx(double(r.p2q)).epsilon(tol));
    }
}

}  // namespace

TEST_CASE_TEMPLATE("softmax: moments match exact quadrature for L = 2", T, float, double, long double) {
    for (double s : {1e-6, 0.01, 0.5, 3.0, 30.0}) check_moments<T>(2, s, ref::two(s), true);
}

TEST_CASE("softmax: moments match exact 2-D quadrature for L = 3 and the Laplace reference for large L") {
    // The references are accurate to about 1e-13 (adaptive tolerance 1e-15 / 1e-14).
    for (double s : {0.01, 1.0, 5.0}) {
        const auto r = ref::three(s);
        check_moments<float>(3, s, r, true);
        check_moments<double>(3, s, r, true);
        check_moments<long double>(3, s, r, true);
    }
    for (int L : {300, 1000000})
        for (double s : {0.3, 9.0}) {
            const auto r = ref::laplace(L, s);
            check_moments<double>(L, s, r, false);
            check_moments<long double>(L, s, r, false);
        }
}

TEST_CASE_TEMPLATE("softmax: exact values of the public API", T, float, double, long double) {
    const softmax<T> c{2};
    const signal<T> x{T(5), T(2), T(0.5)};  // s = (1 - r) s2 = 1; the mean does not matter
    const auto r = ref::two(1.0L);
    const auto y = forward(c, x);
    CHECK(double(y.mean) == doctest::Approx(0.5).epsilon(1e-7));
    CHECK(double(y.var) == doctest::Approx(double(r.var)).epsilon(rel_tol<T>()));
    CHECK(double(y.corr) == doctest::Approx(-1.0).epsilon(1e-7));
    const auto g = backward(c, x, gradient<T>{T(2), T(0.25)});
    CHECK(double(g.var) == doctest::Approx(2 * 0.75 * double(r.grad)).epsilon(rel_tol<T>()));
    CHECK(double(g.corr) == doctest::Approx(-1.0).epsilon(1e-7));
}

TEST_CASE("softmax: limits") {
    SUBCASE("s = 0 (also r = 1): uniform probabilities") {
        for (auto x : {signal<double>{0, 0, 0}, signal<double>{1, 3, 1}}) {
            const auto y = forward(softmax<double>{5}, x);
            CHECK(y.var == 0);
            CHECK(y.corr == doctest::Approx(-0.25));
            const auto g = backward(softmax<double>{5}, x, gradient<double>{1, 0});
            CHECK(g.var == doctest::Approx(4.0 / 125));  // (L - 1)/L^3
        }
    }
    SUBCASE("small s: var = s (L - 1)/L^3, grad = s2_g (1 - r_g)(L - 1)/L^3") {
        for (int L : {2, 7, 1000}) {
            const double s = 1e-9, Ld = L;
            const auto m = detail::softmax_moments<double>(L, s);
            CHECK(m.var == doctest::Approx(s * (Ld - 1) / (Ld * Ld * Ld)).epsilon(1e-6));
            CHECK(m.grad == doctest::Approx((Ld - 1) / (Ld * Ld * Ld)).epsilon(1e-6));
        }
    }
    SUBCASE("large s saturates: one-hot rows, finite, no NaN") {
        for (int L : {2, 50, 1000000})
            for (double s : {1e6, 1e12, 1e100, std::numeric_limits<double>::infinity()}) {
                const auto m = detail::softmax_moments<double>(L, s);
                INFO("L = " << L << ", s = " << s);
                const double p = 1.0 / L;
                CHECK(m.p2 == doctest::Approx(p).epsilon(1e-2));
                CHECK(m.var == doctest::Approx(p - p * p).epsilon(1e-2));
                CHECK(std::isfinite(m.grad));
                CHECK(m.grad >= 0);
                CHECK(m.grad <= 1e-2 * p);
            }
        // A huge logit variance overflows s to +inf: the saturated limit, not NaN.
        const auto y = forward(softmax<double>{4}, signal<double>{0, 1e308, -1});
        CHECK(y.var == doctest::Approx(3.0 / 16));
    }
    SUBCASE("the paper's forms agree with ours to first order only for large L") {
        // As s -> 0 the paper's finite-L variance is s/(L (L - 1)); ours s (L - 1)/L^3.
        for (int L : {2, 10, 300}) {
            const double s = 1e-6, Ld = L;
            const signal<double> x{0, s, 0};
            const double best = forward(softmax<double>{L}, x).var;
            const double paper = forward(softmax<double>{L, form::paper}, x).var;
            CHECK(paper / best == doctest::Approx(Ld * Ld / ((Ld - 1) * (Ld - 1))).epsilon(1e-5));
            const double large = forward(softmax<double>{L, form::paper_large_l}, x).var;
            CHECK(large == doctest::Approx(std::expm1(s) / (Ld * Ld)));
        }
        const double gl = backward(softmax<double>{10, form::paper_large_l}, signal<double>{0, 0.5, 0},
                                   gradient<double>{2, 0.3}).var;
        CHECK(gl == doctest::Approx(2 * std::exp(0.5) / 100));
        // Overflow of the paper's form is +inf, never NaN.
        CHECK(forward(softmax<double>{3, form::paper}, signal<double>{0, 1e5, 0}).var ==
              std::numeric_limits<double>::infinity());
    }
}

TEST_CASE("softmax: property sweep over random valid inputs") {
    std::mt19937_64 rng(12345);
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < 1500; ++i) {
        const int L = int(std::exp(u(rng) * std::log(1e6))) + 1;
        const double s = std::pow(10.0, -10 + 12 * u(rng));
        const auto m = detail::softmax_moments<double>(L < 2 ? 2 : L, s);
        const double Ld = L < 2 ? 2 : L;
        INFO("L = " << Ld << ", s = " << s);
        REQUIRE(std::isfinite(m.p2));
        REQUIRE(std::isfinite(m.grad));
        CHECK(m.var >= 0);
        CHECK(m.var <= (Ld - 1) / (Ld * Ld) * (1 + 1e-12));
        CHECK(m.p2 - 1 / (Ld * Ld) == doctest::Approx(m.var).epsilon(1e-8).scale(1 / (Ld * Ld)));
        CHECK(m.p3 <= m.p2);
        CHECK(m.grad >= 0);
        CHECK(m.grad == doctest::Approx(m.p2 - 2 * m.p3 + m.p2q).epsilon(1e-8).scale(m.p2));
    }
}

TEST_CASE("softmax: bad input throws sigprop::invalid_argument naming the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    struct bad {
        softmax<double> c;
        signal<double> x;
        gradient<double> g;
        std::string message;
    };
    const bad cases[] = {
        {{1}, {}, {}, "sigprop::softmax: L = 1 is outside the valid range [2, inf)"},
        {{0}, {}, {}, "sigprop::softmax: L = 0 is outside the valid range [2, inf)"},
        {{-4}, {}, {}, "sigprop::softmax: L = -4 is outside the valid range [2, inf)"},
        {{4, form(7)}, {}, {}, "sigprop::softmax: form = unknown is outside the valid range {best, paper, paper_large_l}"},
        {{4}, {nan, 1, 0}, {}, "sigprop::softmax: x.mean = nan is outside the valid range (-inf, inf) (finite)"},
        {{4}, {inf, 1, 0}, {}, "sigprop::softmax: x.mean = inf is outside the valid range (-inf, inf) (finite)"},
        {{4}, {0, -1, 0}, {}, "sigprop::softmax: x.var = -1 is outside the valid range [0, inf) (finite)"},
        {{4}, {0, inf, 0}, {}, "sigprop::softmax: x.var = inf is outside the valid range [0, inf) (finite)"},
        {{4}, {0, nan, 0}, {}, "sigprop::softmax: x.var = nan is outside the valid range [0, inf) (finite)"},
        {{4}, {0, 1, 1.5}, {}, "sigprop::softmax: x.corr = 1.5 is outside the valid range [-1, 1]"},
        {{4}, {0, 1, -inf}, {}, "sigprop::softmax: x.corr = -inf is outside the valid range [-1, 1]"},
        {{4}, {0, 1, nan}, {}, "sigprop::softmax: x.corr = nan is outside the valid range [-1, 1]"},
        {{4}, {}, {-2, 0}, "sigprop::softmax: g.var = -2 is outside the valid range [0, inf) (finite)"},
        {{4}, {}, {inf, 0}, "sigprop::softmax: g.var = inf is outside the valid range [0, inf) (finite)"},
        {{4}, {}, {1, -1.25}, "sigprop::softmax: g.corr = -1.25 is outside the valid range [-1, 1]"},
        {{4}, {}, {1, nan}, "sigprop::softmax: g.corr = nan is outside the valid range [-1, 1]"},
    };
    for (const auto& b : cases) {
        INFO(b.message);
        const bool gradient_case = b.message.find(": g.") != std::string::npos;
        if (!gradient_case) CHECK_THROWS_WITH_AS(forward(b.c, b.x), b.message.c_str(), sigprop::invalid_argument);
        CHECK_THROWS_WITH_AS(backward(b.c, b.x, b.g), b.message.c_str(), sigprop::invalid_argument);
    }
    CHECK_NOTHROW(backward(softmax<double>{2}, signal<double>{0, 1, -1}, gradient<double>{1, 1}));
}

TEST_CASE("softmax: the hand-written backward matches finite differences") {
    Eigen::MatrixXd z(4, 2), dp(4, 2);
    z << 0.3, -1.2, 1.1, 0.4, -0.7, 2.0, 0.2, -0.1;
    dp << 0.5, -0.3, -1.0, 0.8, 0.25, 0.1, 2.0, -0.6;
    validation::softmax_model m;
    validation::sequence_streams st = validation::streams_for({}, 0);
    m.forward(st, z);
    const Eigen::MatrixXd dz = m.backward(dp);
    const double h = 1e-6;
    for (Eigen::Index i = 0; i < z.rows(); ++i)
        for (Eigen::Index k = 0; k < z.cols(); ++k) {
            Eigen::MatrixXd zp = z, zm = z;
            zp(i, k) += h;
            zm(i, k) -= h;
            const double lp = (validation::ops::softmax_columns(zp).array() * dp.array()).sum();
            const double lm = (validation::ops::softmax_columns(zm).array() * dp.array()).sum();
            CHECK(dz(i, k) == doctest::Approx((lp - lm) / (2 * h)).epsilon(1e-7));
        }
}

namespace {

// Runs the validator and checks the best form against it.
validation::measurement check_softmax_mc(int L, signal<double> x, gradient<double> g, int width, int seqs,
                                         std::uint32_t experiment) {
    validation::experiment_input in;
    in.x = x;
    in.g = g;
    in.width = width;
    const softmax<double> c{L};
    const auto m = validation::measure(c, in, validation::run_options{99, experiment, seqs, 16});
    const auto y = forward(c, x);
    const auto gb = backward(c, x, g);
    test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", gb.var, m.g.var);
    test::check_agrees("g cov", gb.corr * gb.var, m.g.cov);
    return m;
}

}  // namespace

TEST_CASE("softmax: agrees with the Monte-Carlo validator where the paper's forms do not") {
    // Small L, large logit variance: s = (1 - r) s2 = 2.
    const signal<double> x{0.7, 4.0, 0.5};
    const gradient<double> g{1.5, 0.3};
    const auto m = check_softmax_mc(4, x, g, 2000, 64, 1);
    for (form f : {form::paper, form::paper_large_l}) {
        const softmax<double> c{4, f};
        INFO("form " << to_string(f) << ": x var " << forward(c, x).var << " vs " << m.y.var.value << " +- "
                     << m.y.var.se << ", g var " << backward(c, x, g).var << " vs " << m.g.var.value);
        CHECK(std::abs(forward(c, x).var - m.y.var.value) > 10 * m.y.var.se);
        CHECK(std::abs(backward(c, x, g).var - m.g.var.value) > 10 * m.g.var.se);
    }
}

TEST_CASE("softmax: agrees with the Monte-Carlo validator on the paper's grid") {
    // L = 300, s = 1 (logit std 10^0, r = 0): the largest s of the paper's grid.
    check_softmax_mc(300, signal<double>{0, 1, 0}, gradient<double>{1, 0}, 100, 64, 2);
}

namespace {

// The large-L expansion (softmax_series) against the quadrature (softmax_moments_exact),
// wherever the expansion reports success. Measured: about 2e-15 in double and 1e-18 in long
// double; asked: 1e-13 and 1e-16 (the documented target is 1e-12).
template <class T>
double series_tol() {
    return std::is_same_v<T, double> ? 1e-13 : 1e-16;
}

template <class T>
void check_series_against_exact(int L, T s, int& used_var, int& used_grad) {
    namespace ss = detail::softmax_series;
    INFO("L = " << L << ", s = " << double(s));
    if (!detail::softmax_series_candidate(L, s)) return;
    const ss::lognormal_cumulants<T> cum(s);
    const T tol = detail::softmax_series_tol<T>();
    T v, err, p2, p3, p2q, grad;
    const bool okv = ss::var(cum, L, s, tol, v, err);
    const bool okg = ss::higher(cum, L, s, tol, p2, p3, p2q, grad, false);
    T a2, a3, aq, ag;
    const bool oka = ss::higher(cum, L, s, tol, a2, a3, aq, ag, true);
    if (!okv && !okg) return;
    const auto e = detail::softmax_moments_exact(L, s);
    if (okv) {
        ++used_var;
        CHECK(double(v) == doctest::Approx(double(e.var)).epsilon(series_tol<T>()));
        CHECK(double(err) <= 1e-13 * double(v));
    }
    if (okg) {
        ++used_grad;
        CHECK(double(grad) == doctest::Approx(double(e.grad)).epsilon(series_tol<T>()));
        CHECK(double(p2) == doctest::Approx(double(e.p2)).epsilon(series_tol<T>()));
    }
    if (oka) {
        CHECK(okg);
        CHECK(double(a3) == doctest::Approx(double(e.p3)).epsilon(series_tol<T>()));
        CHECK(double(aq) == doctest::Approx(double(e.p2q)).epsilon(series_tol<T>()));
        CHECK(double(ag) == doctest::Approx(double(e.grad)).epsilon(series_tol<T>()));
    }
}

}  // namespace

TEST_CASE_TEMPLATE("softmax: the large-L expansion agrees with the quadrature", T, double, long double) {
    int used_var = 0, used_grad = 0;
    for (int L : {8, 16, 30, 100, 300, 548, 1000, 3000, 10000, 100000, 1000000, 100000000})
        for (double s : {1e-12, 1e-6, 1e-3, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.3, 1.6, 2.0, 2.5})
            check_series_against_exact<T>(L, T(s), used_var, used_grad);
    // The region is not empty: the paper's grid at small s and every s <= 1 at L = 1e6, say.
    CHECK(used_var >= 90);
    CHECK(used_grad >= 70);
}

TEST_CASE("softmax: the regions of the large-L expansion (double)") {
    namespace ss = detail::softmax_series;
    auto var_ok = [](int L, double s) {
        if (!detail::softmax_series_candidate(L, s)) return false;
        double v, e;
        return ss::var(ss::lognormal_cumulants<double>(s), L, s, detail::softmax_series_tol<double>(), v, e);
    };
    auto grad_ok = [](int L, double s) {
        if (!detail::softmax_series_candidate(L, s)) return false;
        double a, b, c, g;
        return ss::higher(ss::lognormal_cumulants<double>(s), L, s, detail::softmax_series_tol<double>(), a, b, c, g,
                          false);
    };
    // Documented in docs/theory/softmax.md.
    CHECK(var_ok(300, 0.2));
    CHECK(grad_ok(300, 0.1));
    CHECK(var_ok(10000, 0.5));
    CHECK(grad_ok(10000, 0.3));
    CHECK(var_ok(1000000, 1.0));
    CHECK(grad_ok(1000000, 0.7));
    CHECK_FALSE(var_ok(300, 1.0));
    CHECK_FALSE(grad_ok(300, 1.0));
    CHECK_FALSE(var_ok(100, 2.0));
    CHECK_FALSE(var_ok(4, 0.01));
}

TEST_CASE_TEMPLATE("softmax: the switch between expansion and quadrature is continuous", T, double, long double) {
    // For each L, find the largest s at which the expansion is still used (bisection on the
    // public entry points' choice) and compare the public results just below and just above
    // it with the quadrature: both sides agree with it, so the jump is below 2 tol.
    namespace ss = detail::softmax_series;
    const T tol = detail::softmax_series_tol<T>();
    auto var_ok = [&](int L, T s) {
        if (!detail::softmax_series_candidate(L, s)) return false;
        T v, e;
        return ss::var(ss::lognormal_cumulants<T>(s), L, s, tol, v, e);
    };
    auto grad_ok = [&](int L, T s) {
        if (!detail::softmax_series_candidate(L, s)) return false;
        T a, b, c, g;
        return ss::higher(ss::lognormal_cumulants<T>(s), L, s, tol, a, b, c, g, false);
    };
    for (int L : {100, 1000, 100000}) {
        for (int which = 0; which < 2; ++which) {
            auto ok = [&](T s) { return which == 0 ? var_ok(L, s) : grad_ok(L, s); };
            T lo = T(1e-3), hi = T(3);
            REQUIRE(ok(lo));
            REQUIRE_FALSE(ok(hi));
            for (int it = 0; it < 80; ++it) {
                const T mid = (lo + hi) / 2;
                (ok(mid) ? lo : hi) = mid;
            }
            const std::string what = which == 0 ? "var" : "grad";
            INFO("L = " << L << ", " << what << ", boundary s = " << double(lo));
            for (T s : {lo, hi}) {
                const auto e = detail::softmax_moments_exact(L, s);
                const T fast = which == 0 ? detail::softmax_var(L, s) : detail::softmax_grad(L, s);
                const T ref = which == 0 ? e.var : e.grad;
                CHECK(double(fast) == doctest::Approx(double(ref)).epsilon(series_tol<T>()));
            }
            const T below = which == 0 ? detail::softmax_var(L, lo) : detail::softmax_grad(L, lo);
            const T above = which == 0 ? detail::softmax_var(L, hi) : detail::softmax_grad(L, hi);
            // hi - lo is a few ulps of s: the slope of the function adds nothing visible.
            CHECK(double(above) == doctest::Approx(double(below)).epsilon(2 * series_tol<T>()));
        }
    }
}
