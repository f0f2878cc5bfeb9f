#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "sigprop/components/layer_norm.hpp"
#include "sigprop/validation/components/layer_norm.hpp"
#include "support/agreement.hpp"
#include "support/layer_norm_reference.hpp"

using namespace sigprop;
namespace ref = sigprop::test::layer_norm_ref;

namespace {

// Relative tolerance of the closed forms in each precision: a few dozen roundings.
template <class T>
double rel_tol() {
    if constexpr (std::is_same_v<T, float>) return 2e-5;
    else if constexpr (std::is_same_v<T, double>) return 1e-13;
    else return 1e-16;
}

template <class T>
T token_corr(int d, T r, form f = form::best) {
    return forward(layer_norm<T>{d, f}, signal<T>{T(0), T(1), r}).corr;
}

template <class T>
gradient<T> grad(int d, T r, T rg, form f = form::best, T xvar = T(1), T gvar = T(1)) {
    return backward(layer_norm<T>{d, f}, signal<T>{T(0), xvar, r}, gradient<T>{gvar, rg});
}

}  // namespace

TEST_CASE_TEMPLATE("layer_norm: exact values", T, float, double, long double) {
    const double tol = rel_tol<T>();
    // (d, r, E[cos], corr_g / r_g), 25 digits from mpmath (hyp2f1 and Gamma at 30 digits),
    // cross-checked there against the quadrature of the angle law in layer_norm_reference.hpp.
    struct row { int d; long double r, corr, gfactor; };
    const row rows[] = {
        {8, 0.9L, 0.8846628900681477243073373L, 0.9293301826652076680249239L},
        {5, 0.5L, 0.4517149931895265389278326L, 0.6309333460016553239653797L},
        {100, 0.3L, 0.2986219462358455303123L, 0.9861303007245376572119075L},
        {4, 0.999L, 0.9980730275612217731987868L, 0.9459271499637833899078957L},
        {7, -0.6L, -0.5658149386040333408199441L, 0.7942032307861804937360385L},
    };
    for (const auto& w : rows) {
        CAPTURE(w.d);
        CAPTURE(double(w.r));
        const layer_norm<T> c{w.d};
        const signal<T> x{T(-2), T(3), T(w.r)};
        const auto y = forward(c, x);
        CHECK(y.mean == T(0));
        CHECK(y.var == T(1));
        CHECK(double(y.corr) == doctest::Approx(double(w.corr)).epsilon(tol));
        const auto g = backward(c, x, gradient<T>{T(1.5), T(0.5)});
        CHECK(double(g.var) == doctest::Approx(0.5 * (w.d - 2.0) / (w.d - 3.0)).epsilon(tol));
        CHECK(double(g.corr) == doctest::Approx(0.5 * double(w.gfactor)).epsilon(tol));
    }
    // The paper's Table 1.
    const layer_norm<T> p{8, form::paper};
    const signal<T> x{T(1), T(2), T(0.9)};
    CHECK(double(forward(p, x).corr) == doctest::Approx(0.9 * 7 / 8).epsilon(tol));
    const auto gp = backward(p, x, gradient<T>{T(3), T(0.4)});
    CHECK(double(gp.var) == doctest::Approx(1.5).epsilon(tol));
    CHECK(gp.corr == T(0.4));
    CHECK(double(unit_covariance(layer_norm<T>{5})) == doctest::Approx(-0.25).epsilon(tol));
}

TEST_CASE_TEMPLATE("layer_norm: 2F1(1/2, 1/2, c, z) matches Euler's integral", T, double, long double) {
    const double tol = std::is_same_v<T, double> ? 4e-15 : 2e-17;
    const long double ws[] = {0.9L, 0.5L, 0.45L, 0.2L, 1e-3L, 1e-6L, 1e-10L, 1e-15L, 0.0L};
    // Every m of the recurrence (m < 42), the switch to the series, and a few beyond.
    for (long long m : {3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 21, 26, 33, 40, 41, 42, 43, 60, 91}) {
        const long double c = m / 2.0L;
        for (long double w : ws) {
            CAPTURE(m);
            CAPTURE(double(w));
            const auto f = detail::half_half_2f1<T>(m, T(1 - w), T(w));
            const long double v = ref::euler_2f1(c, w);
            CHECK(std::abs(double(f.value / v - 1)) <= tol);
            // The step F_{c-1} - F_c, relative to F_{c-1} (Euler needs c - 1 > 1/2, and
            // F_1 diverges at z = 1).
            if (m >= 4 && !(m == 4 && w == 0)) {
                const long double below = ref::euler_2f1(c - 1, w);
                CHECK(std::abs(double((f.step_down - (below - v)) / below)) <= 4 * tol);
            }
        }
    }
}

TEST_CASE_TEMPLATE("layer_norm: nu_n = (2/n) (Gamma((n+1)/2) / Gamma(n/2))^2 matches Boost.Math", T, float, double,
                   long double) {
    // Both the exact products (n <= 40) and the asymptotic series (n > 40).
    for (long long n : {1LL, 2LL, 3LL, 4LL, 7LL, 8LL, 39LL, 40LL, 41LL, 42LL, 57LL, 100LL, 1001LL, 123456LL}) {
        CAPTURE(n);
        const long double k = boost::math::tgamma_delta_ratio((n + 1) / 2.0L, -0.5L);
        const long double e = 2 * k * k / n;
        CHECK(std::abs(double(detail::chi_mean_sq_ratio<T>(n) / T(e) - 1)) <= rel_tol<T>() / 8);
    }
}

TEST_CASE("layer_norm: the closed forms match the quadrature of the angle law") {
    // Odd d runs the integer-c chain of the recurrence, even d the half-integer one, d = 50
    // the series. (The quadrature is slow at large d, hence one r there.)
    struct point { int d; long double r; };
    std::vector<point> points;
    for (int d : {3, 4, 9, 16})
        for (long double r : {-0.55L, 0.2L, 0.95L}) points.push_back({d, r});
    points.push_back({50, -0.55L});
    for (const auto& p : points) {
        CAPTURE(p.d);
        CAPTURE(double(p.r));
        const long double fc = token_corr<long double>(p.d, p.r);
        CHECK(double(fc) == doctest::Approx(double(ref::token_corr(p.d, p.r))).epsilon(1e-16));
        if (p.d >= 4) {
            const long double fg = grad<long double>(p.d, p.r, 1.0L).corr;
            CHECK(double(fg) == doctest::Approx(double(ref::grad_corr_factor(p.d, p.r))).epsilon(1e-16));
        }
    }
}

TEST_CASE_TEMPLATE("layer_norm: limits", T, float, double, long double) {
    const double tol = rel_tol<T>();
    SUBCASE("d = 2 is the sign of the difference: (2/pi) arcsin r") {
        for (long double r : {-0.99L, -0.4L, 0.1L, 0.5L, 0.77L, 0.999L}) {
            const long double e = 2 / ref::pi * std::asin(r);
            CHECK(double(token_corr<T>(2, T(r))) == doctest::Approx(double(e)).epsilon(tol));
        }
    }
    SUBCASE("r = 0, |r| = 1 and odd symmetry") {
        for (int d : {2, 3, 4, 7, 8, 41, 42, 43, 1000}) {
            CHECK(token_corr<T>(d, T(0)) == T(0));
            CHECK(token_corr<T>(d, T(1)) == T(1));
            CHECK(token_corr<T>(d, T(-1)) == T(-1));
            for (T r : {T(0.3), T(0.75), T(0.999)}) CHECK(token_corr<T>(d, -r) == -token_corr<T>(d, r));
        }
    }
    SUBCASE("r -> 1 is continuous") {
        for (int d : {2, 3, 4, 5, 16, 100}) {
            // Both approach 1 like sqrt(1 - r) at small d (d = 2: 1 - (2/pi) sqrt(2 (1 - r))).
            const T delta = T(64) * std::numeric_limits<T>::epsilon();
            const T y = token_corr<T>(d, T(1) - delta);
            CHECK(y <= T(1));
            CHECK(double(y) > 1 - 2 * std::sqrt(double(delta)));
            if (d >= 4) CHECK(double(grad<T>(d, T(1) - delta, T(1)).corr) > 1 - 10 * std::sqrt(double(delta)));
        }
    }
    SUBCASE("large d: E[cos] = r - r (1 - r^2) / (2 (d - 1)) + O(1/d^2)") {
        for (int d : {10000, 1000000}) {
            const T r = T(0.5);
            const double gap = double(r - token_corr<T>(d, r));
            const double lead = 0.5 * 0.75 / (2.0 * (d - 1));
            CHECK(gap == doctest::Approx(lead).epsilon(std::is_same_v<T, float> ? 0.5 : 1e-2));
        }
        const double n = std::numeric_limits<int>::max() - 1.0;
        CHECK(double(token_corr<T>(std::numeric_limits<int>::max(), T(0.8))) ==
              doctest::Approx(0.8 - 0.8 * 0.36 / (2 * n)).epsilon(tol));
    }
    SUBCASE("gradient: r = 0 gives ((d-2)/(d-1)) nu_{d-1}, |r| = 1 keeps r_g") {
        // nu_3 = (2/3) (Gamma(2) / Gamma(3/2))^2 = 8 / (3 pi): d = 4 gives 4 / (3 pi).
        CHECK(double(grad<T>(4, T(0), T(1)).corr) == doctest::Approx(double(4 / (3 * ref::pi))).epsilon(tol));
        for (int d : {4, 9, 64}) {
            CHECK(grad<T>(d, T(1), T(0.3)).corr == T(0.3));
            CHECK(grad<T>(d, T(-1), T(0.3)).corr == T(0.3));
        }
        // For large d the factor at r = 0 is 1 - 3/(2d) + O(1/d^2).
        CHECK(double(1 - grad<T>(100000, T(0), T(1)).corr) == doctest::Approx(1.5e-5).epsilon(1e-3 + 100 * tol));
    }
    SUBCASE("gradient variance: d = 2 is exactly 0, d = 3 diverges, d > 3 is (s2_g/s2)(d-2)/(d-3)") {
        CHECK(grad<T>(2, T(0.5), T(0.2)).var == T(0));
        CHECK(grad<T>(2, T(0.5), T(0.2)).corr == T(0.2));
        CHECK(grad<T>(3, T(0.5), T(0.2)).var == std::numeric_limits<T>::infinity());
        CHECK(grad<T>(3, T(0.5), T(0.2)).corr == T(0));
        CHECK(grad<T>(3, T(1), T(0.2)).corr == T(0.2));
        CHECK(double(grad<T>(16, T(0.5), T(0.2), form::best, T(4), T(2)).var) == doctest::Approx(0.5 * 14 / 13).epsilon(tol));
    }
    SUBCASE("the input mean does not enter; extreme variances") {
        const layer_norm<T> c{12};
        const T big = std::numeric_limits<T>::max();
        const auto a = forward(c, signal<T>{T(0), T(1), T(0.6)});
        const auto b = forward(c, signal<T>{big, big, T(0.6)});
        CHECK(a.corr == b.corr);
        const gradient<T> g{T(2), T(0.5)};
        CHECK(backward(c, signal<T>{big, T(1), T(0.6)}, g).corr == backward(c, signal<T>{T(0), T(1), T(0.6)}, g).corr);
        CHECK(backward(c, signal<T>{T(0), std::numeric_limits<T>::denorm_min(), T(0.6)}, g).var ==
              std::numeric_limits<T>::infinity());
        CHECK(backward(c, signal<T>{T(0), big, T(0.6)}, gradient<T>{T(0), T(0.5)}).var == T(0));
    }
}

TEST_CASE_TEMPLATE("layer_norm: property sweep over random valid inputs", T, float, double, long double) {
    std::mt19937_64 rng(12345);
    std::uniform_real_distribution<double> u(0, 1);
    const double lv = std::is_same_v<T, float> ? 37 : 300;
    const T eps = std::numeric_limits<T>::epsilon();
    for (int i = 0; i < 4000; ++i) {
        const int d = i % 97 == 0 ? std::numeric_limits<int>::max()
                                  : 2 + int(std::floor(std::pow(10.0, 6 * u(rng) * u(rng))));
        T r = T(2 * u(rng) - 1);
        if (i % 5 == 0) r = T((u(rng) < 0.5 ? -1 : 1) * (1 - std::pow(10.0, -18 * u(rng))));
        const signal<T> x{T((2 * u(rng) - 1) * std::pow(10.0, lv * u(rng))),
                          T(std::pow(10.0, lv * (2 * u(rng) - 1))), r};
        const gradient<T> g{T(i % 11 == 0 ? 0 : std::pow(10.0, lv * (2 * u(rng) - 1))), T(2 * u(rng) - 1)};
        for (form f : {form::best, form::paper}) {
            CAPTURE(d);
            CAPTURE(double(r));
            const auto y = forward(layer_norm<T>{d, f}, x);
            const auto dx = backward(layer_norm<T>{d, f}, x, g);
            CHECK(y.mean == T(0));
            CHECK(y.var == T(1));
            CHECK(std::isfinite(double(y.corr)));
            CHECK(std::abs(y.corr) <= std::abs(r) * (1 + 8 * eps));
            CHECK(!(y.corr * r < T(0)));
            CHECK(!std::isnan(double(dx.var)));
            CHECK(dx.var >= T(0));
            CHECK(std::isfinite(double(dx.corr)));
            CHECK(std::abs(dx.corr) <= std::abs(g.corr));
        }
    }
}

TEST_CASE("layer_norm: bad input throws sigprop::invalid_argument naming the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    const layer_norm<double> ok{8};
    const signal<double> x{0, 1, 0.2};
    const gradient<double> g{1, 0.3};
    struct bad { std::string expected; std::function<void()> call; };
    const std::string pre = "sigprop::layer_norm: ";
    const std::vector<bad> table = {
        {"d = 1 is outside the valid range [2, inf)", [&] { forward(layer_norm<double>{1}, x); }},
        {"d = 0 is outside the valid range [2, inf)", [&] { backward(layer_norm<double>{0}, x, g); }},
        {"d = -5 is outside the valid range [2, inf)", [&] { unit_covariance(layer_norm<double>{-5}); }},
        {"form = paper_large_l is outside the valid range {best, paper}",
         [&] { forward(layer_norm<double>{8, form::paper_large_l}, x); }},
        {"x.mean = nan is outside the valid range (-inf, inf) (finite)", [&] { forward(ok, {nan, 1, 0}); }},
        {"x.mean = inf is outside the valid range (-inf, inf) (finite)", [&] { backward(ok, {inf, 1, 0}, g); }},
        {"x.mean = -inf is outside the valid range (-inf, inf) (finite)", [&] { forward(ok, {-inf, 1, 0}); }},
        {"x.var = 0 is outside the valid range (0, inf) (finite)", [&] { forward(ok, {0, 0, 0}); }},
        {"x.var = -1 is outside the valid range (0, inf) (finite)", [&] { forward(ok, {0, -1, 0}); }},
        {"x.var = nan is outside the valid range (0, inf) (finite)", [&] { backward(ok, {0, nan, 0}, g); }},
        {"x.var = inf is outside the valid range (0, inf) (finite)", [&] { forward(ok, {0, inf, 0}); }},
        {"x.corr = 1.5 is outside the valid range [-1, 1]", [&] { forward(ok, {0, 1, 1.5}); }},
        {"x.corr = -1.0001 is outside the valid range [-1, 1]", [&] { backward(ok, {0, 1, -1.0001}, g); }},
        {"x.corr = nan is outside the valid range [-1, 1]", [&] { forward(ok, {0, 1, nan}); }},
        {"g.var = -1 is outside the valid range [0, inf) (finite)", [&] { backward(ok, x, {-1, 0}); }},
        {"g.var = nan is outside the valid range [0, inf) (finite)", [&] { backward(ok, x, {nan, 0}); }},
        {"g.var = inf is outside the valid range [0, inf) (finite)", [&] { backward(ok, x, {inf, 0}); }},
        {"g.corr = 2 is outside the valid range [-1, 1]", [&] { backward(ok, x, {1, 2}); }},
        {"g.corr = nan is outside the valid range [-1, 1]", [&] { backward(ok, x, {1, nan}); }},
    };
    for (const auto& b : table) CHECK_THROWS_WITH_AS(b.call(), (pre + b.expected).c_str(), sigprop::invalid_argument);
    CHECK_NOTHROW(forward(ok, x));
    CHECK_NOTHROW(backward(ok, x, g));
    CHECK_NOTHROW(backward(layer_norm<double>{2}, signal<double>{0, 1e-300, -1}, gradient<double>{0, 1}));
}

TEST_CASE("layer_norm: the hand-written backward matches finite differences") {
    validation::layer_norm_model m{{5}, {}, {}};
    validation::sequence_streams st = validation::streams_for({}, 0);
    Eigen::MatrixXd x(2, 5), g(2, 5);
    x << 0.3, -1.2, 2.0, 0.7, 1.1, -0.4, 0.9, 0.1, -2.2, 0.5;
    g << 1.0, 0.2, -0.7, 0.4, -1.3, 0.6, -0.5, 1.7, 0.3, -0.9;
    m.forward(st, x);
    const Eigen::MatrixXd dx = m.backward(g);
    const double h = 1e-6;
    for (int i = 0; i < 2; ++i)
        for (int k = 0; k < 5; ++k) {
            Eigen::MatrixXd xp = x, xm = x;
            xp(i, k) += h;
            xm(i, k) -= h;
            const double lp = m.forward(st, xp).cwiseProduct(g).sum();
            const double lm = m.forward(st, xm).cwiseProduct(g).sum();
            CHECK(dx(i, k) == doctest::Approx((lp - lm) / (2 * h)).epsilon(1e-7));
        }
}

TEST_CASE("layer_norm: two units of one token have covariance -1/(d - 1)") {
    validation::layer_norm_model m{{6}, {}, {}};
    validation::sequence_streams st = validation::streams_for({}, 0);
    Eigen::MatrixXd x(3, 6);
    validation::sample_signal(x, {2.0, 3.0, 0.4}, st.input);
    const Eigen::MatrixXd y = m.forward(st, x);
    for (int i = 0; i < 3; ++i) {
        const double s = y.row(i).sum(), s2 = y.row(i).squaredNorm();
        // mean over the pairs k != l of y_k y_l = (s^2 - s2) / (d (d - 1)).
        CHECK((s * s - s2) / 30.0 == doctest::Approx(unit_covariance(layer_norm<double>{6})).epsilon(1e-13));
    }
}

namespace {

// Compares both forms with one Monte-Carlo measurement. Ours must agree within the
// standard errors; where `paper_off`, the paper's token correlation, gradient variance and
// gradient correlation must each miss by more than 10 standard errors.
void check_against_monte_carlo(int d, int tokens, signal<double> xin, gradient<double> gin,
                               int sequences, bool paper_off) {
    validation::experiment_input in;
    in.x = xin;
    in.g = gin;
    in.tokens = tokens;
    const auto m = validation::measure(layer_norm<double>{d}, in, validation::run_options{11, std::uint32_t(d), sequences, 20});
    const auto y = forward(layer_norm<double>{d}, in.x);
    const auto g = backward(layer_norm<double>{d}, in.x, in.g);
    CHECK(std::abs(m.y.mean.value) < 1e-12);  // exact: every token's outputs sum to 0
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", g.var, m.g.var);
    test::check_agrees("g cov", g.corr * g.var, m.g.cov);
    test::check_agrees("g corr", g.corr, m.g.corr);
    if (paper_off) {
        const layer_norm<double> p{d, form::paper};
        const auto yp = forward(p, in.x);
        const auto gp = backward(p, in.x, in.g);
        INFO("paper: x corr " << yp.corr << ", g var " << gp.var << ", g corr " << gp.corr);
        INFO("measured: x corr " << m.y.corr.value << " +- " << m.y.corr.se << ", g var " << m.g.var.value
                                 << " +- " << m.g.var.se << ", g corr " << m.g.corr.value << " +- " << m.g.corr.se);
        CHECK(std::abs(yp.corr - m.y.corr.value) > 10 * m.y.corr.se);
        CHECK(std::abs(gp.var - m.g.var.value) > 10 * m.g.var.se);
        CHECK(std::abs(gp.corr - m.g.corr.value) > 10 * m.g.corr.se);
    }
}

}  // namespace

TEST_CASE("layer_norm: agrees with the Monte-Carlo validator where the paper's form is off (d = 8, r = 0.9)") {
    check_against_monte_carlo(8, 6, {3.0, 2.5, 0.9}, {0.8, 0.6}, 100000, true);
}

TEST_CASE("layer_norm: agrees with the Monte-Carlo validator (d = 11, integer-c chain)") {
    check_against_monte_carlo(11, 4, {-1.0, 0.4, 0.5}, {1.5, 0.7}, 100000, true);
}

TEST_CASE("layer_norm: agrees with the Monte-Carlo validator (d = 48, series, negative r)") {
    check_against_monte_carlo(48, 6, {0.0, 1.0, -0.15}, {1.0, 0.5}, 20000, false);
}
