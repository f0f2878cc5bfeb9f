#include <cmath>
#include <limits>

#include <doctest/doctest.h>

#include "sigprop/components/dropout.hpp"
#include "sigprop/components/gelu.hpp"
#include "sigprop/components/linear.hpp"
#include "sigprop/components/relu.hpp"
#include "sigprop/compose.hpp"
#include "sigprop/validation/components/dropout.hpp"
#include "sigprop/validation/components/linear.hpp"
#include "sigprop/validation/components/relu.hpp"
#include "sigprop/validation/compose.hpp"
#include "support/agreement.hpp"

using namespace sigprop;

namespace {
template <class T>
void check_same(const signal<T>& a, const signal<T>& b) {
    CHECK(a.mean == b.mean);
    CHECK(a.var == b.var);
    CHECK(a.corr == b.corr);
}
template <class T>
void check_same(const gradient<T>& a, const gradient<T>& b) {
    CHECK(a.var == b.var);
    CHECK(a.corr == b.corr);
}
}  // namespace

TEST_CASE_TEMPLATE("compose: serial equals composing by hand", T, float, double, long double) {
    const linear<T> a{64, 128, T(0.1)};
    const relu<T> b{};
    const dropout<T> c{T(0.2)};
    const auto s = serial(a, b, c);
    const signal<T> x{T(0.3), T(1.7), T(0.4)};
    const gradient<T> g{T(0.9), T(0.25)};
    const auto ya = forward(a, x), yb = forward(b, ya);
    check_same(forward(s, x), forward(c, yb));
    // Right fold, each part with the forward moments at its own input (relu's backward
    // depends on its input correlation, so a wrong input would show).
    check_same(backward(s, x, g), backward(a, x, backward(b, ya, backward(c, yb, g))));
    // A single part is that part; a serial nests.
    check_same(forward(serial(a), x), forward(a, x));
    check_same(backward(serial(serial(a, b), c), x, g), backward(s, x, g));
}

TEST_CASE_TEMPLATE("compose: residual adds variances and covariances", T, float, double, long double) {
    const auto branch = serial(linear<T>{32, 64, T(0.2)}, relu<T>{}, linear<T>{64, 32, T(0.15)});
    const signal<T> x{T(0), T(1.3), T(0.35)};
    const gradient<T> g{T(0.8), T(0.1)};
    const T lambda = T(0.9), beta = T(0.6);
    const auto f = forward(branch, x);
    const auto gf = backward(branch, x, g);
    const auto y = forward(residual(branch, lambda, beta), x);
    const auto d = backward(residual(branch, lambda, beta), x, g);
    const double eps = std::is_same_v<T, float> ? 1e-5 : 1e-12;
    const double var = 0.81 * 1.3 + 0.36 * double(f.var);
    const double cov = 0.81 * 0.35 * 1.3 + 0.36 * double(f.corr) * double(f.var);
    CHECK(double(y.mean) == doctest::Approx(0.6 * double(f.mean)).epsilon(eps));
    CHECK(double(y.var) == doctest::Approx(var).epsilon(eps));
    CHECK(double(y.corr) == doctest::Approx(cov / var).epsilon(eps));
    const double gv = 0.81 * 0.8 + 0.36 * double(gf.var);
    const double gc = 0.81 * 0.1 * 0.8 + 0.36 * double(gf.corr) * double(gf.var);
    CHECK(double(d.var) == doctest::Approx(gv).epsilon(eps));
    CHECK(double(d.corr) == doctest::Approx(gc / gv).epsilon(eps));
    // residual(branch) is lambda = beta = 1, also for float components (weights stored as double).
    check_same(forward(residual(branch), x), forward(residual(branch, T(1), T(1)), x));
    // Limits: beta = 0 is the identity, lambda = 0 is the branch.
    const auto id = forward(residual(branch, T(1), T(0)), x);
    CHECK(id.mean == x.mean);
    CHECK(double(id.var) == doctest::Approx(double(x.var)).epsilon(eps));
    CHECK(double(id.corr) == doctest::Approx(double(x.corr)).epsilon(eps));
    const auto only = forward(residual(branch, T(0), T(1)), x);
    CHECK(double(only.var) == doctest::Approx(double(f.var)).epsilon(eps));
    CHECK(double(only.corr) == doctest::Approx(double(f.corr)).epsilon(eps));
}

TEST_CASE_TEMPLATE("compose: repeat n equals the n-fold serial", T, float, double, long double) {
    const auto block = residual(serial(linear<T>{16, 16, T(0.3)}, gelu<T>{}, linear<T>{16, 16, T(0.25)}), T(0.8), T(0.6));
    const signal<T> x{T(0), T(1), T(0.2)};
    const gradient<T> g{T(1), T(0.3)};
    check_same(forward(repeat(1, block), x), forward(block, x));
    check_same(forward(repeat(3, block), x), forward(serial(block, block, block), x));
    check_same(backward(repeat(3, block), x, g), backward(serial(block, block, block), x, g));
    // Depth: 200 layers run without trouble and keep a valid correlation.
    const auto y = forward(repeat(200, block), x);
    const auto d = backward(repeat(200, block), x, g);
    CHECK(std::isfinite(double(y.var)));
    CHECK((y.corr >= T(-1) && y.corr <= T(1)));
    CHECK((d.var >= T(0) && std::isfinite(double(d.var))));
}

TEST_CASE("compose: overflow saturates to +infinity, never NaN or a throw") {
    const double inf = std::numeric_limits<double>::infinity();
    const auto s = serial(linear<double>{1000, 1000, 1e200}, relu<double>{}, linear<double>{10, 10, 1.0});
    const signal<double> x{0, 1e300, 0.5};
    const auto y = forward(s, x);
    CHECK(y.var == inf);
    CHECK(!std::isnan(y.corr));
    const auto d = backward(s, x, gradient<double>{1, 0.2});
    CHECK(d.var == inf);
    CHECK(!std::isnan(d.corr));
    // In a residual the overflowed branch dominates; beta = 0 silences it.
    const auto r = forward(residual(s, 1.0, 1.0), x);
    CHECK(r.var == inf);
    CHECK(!std::isnan(r.corr));
    const auto r0 = forward(residual(s, 1.0, 0.0), x);
    CHECK(r0.var == doctest::Approx(1e300));
    CHECK(r0.corr == doctest::Approx(0.5));
    const auto deep = forward(repeat(50, residual(linear<double>{100, 100, 1.0}, 1.0, 1.0)), signal<double>{0, 1e300, 0.1});
    CHECK(deep.var == inf);
    CHECK(!std::isnan(deep.corr));
}

TEST_CASE("compose: bad input throws sigprop::invalid_argument naming the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    const linear<double> l{4, 4, 0.5};
    const signal<double> x{0, 1, 0.2};
    const gradient<double> g{1, 0.1};
    CHECK_THROWS_WITH_AS(forward(residual(l, nan, 1.0), x),
                         "sigprop::residual: lambda = nan is outside the valid range (-inf, inf) (finite)",
                         sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(backward(residual(l, 1.0, inf), x, g),
                         "sigprop::residual: beta = inf is outside the valid range (-inf, inf) (finite)",
                         sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(forward(residual(l, -inf, 1.0), x),
                         "sigprop::residual: lambda = -inf is outside the valid range (-inf, inf) (finite)",
                         sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(forward(repeat(0, l), x), "sigprop::repeat: n = 0 is outside the valid range [1, inf)",
                         sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(backward(repeat(-3, l), x, g), "sigprop::repeat: n = -3 is outside the valid range [1, inf)",
                         sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(forward(serial(l, relu<double>{}), signal<double>{0, inf, 0.2}),
                         "sigprop::serial: x.var = inf is outside the valid range [0, inf) (finite)",
                         sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(backward(serial(l), x, gradient<double>{1, 2}),
                         "sigprop::serial: g.corr = 2 is outside the valid range [-1, 1]", sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(forward(repeat(2, l), signal<double>{nan, 1, 0}),
                         "sigprop::repeat: x.mean = nan is outside the valid range (-inf, inf) (finite)",
                         sigprop::invalid_argument);
    // A bad part is reported by the part itself.
    CHECK_THROWS_WITH_AS(forward(serial(l, linear<double>{0, 4, 1.0}), x),
                         "sigprop::linear: d_in = 0 is outside the valid range [1, inf)", sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(forward(residual(dropout<double>{1.0}, 1.0, 1.0), x),
                         "sigprop::dropout: p = 1 is outside the valid range [0, 1)", sigprop::invalid_argument);
    CHECK_NOTHROW(backward(repeat(2, residual(serial(l, relu<double>{}, l), 0.5, 0.5)), x, g));
}

TEST_CASE("compose: part streams are distinct and keep the sequence streams bit-identical") {
    validation::run_options o{5, 3, 4, 2};
    auto a = validation::streams_for(o, 1);
    auto b = validation::streams_for(o, 1);
    CHECK(a.weights.next() == b.weights.next());  // unchanged behaviour
    auto p0 = validation::part_streams(b, 0), p1 = validation::part_streams(b, 1);
    auto p0again = validation::part_streams(validation::streams_for(o, 1), 0);
    auto nested = validation::part_streams(p0, 0);
    const double w0 = p0.weights.next(), w1 = p1.weights.next(), w00 = nested.weights.next();
    CHECK(w0 == p0again.weights.next());
    CHECK(w0 != w1);
    CHECK(w0 != w00);
    CHECK(w0 != validation::streams_for(o, 1).weights.next());
    CHECK(p0.masks.uniform(0) != p1.masks.uniform(0));
}

TEST_CASE("compose: residual MLP block agrees with the Monte-Carlo validator") {
    // y = x + W2 relu(W1 x): the standard residual with lambda = beta = 1.
    const linear<double> l1{32, 64, 0.2}, l2{64, 32, 0.15};
    const auto block = residual(serial(l1, relu<double>{}, l2), 1.0, 1.0);
    auto model = validation::make_residual_model(
        validation::make_serial_model(validation::linear_model{l1, {}}, validation::relu_model{},
                                      validation::linear_model{l2, {}}),
        1.0, 1.0);
    validation::experiment_input in;
    in.x = {0.2, 1.3, 0.35};
    in.g = {0.8, 0.3};
    in.tokens = 8;
    in.width = 32;
    const auto m = validation::measure_model(model, in, validation::run_options{17, 1, 600, 20});
    const auto y = forward(block, in.x);
    const auto g = backward(block, in.x, in.g);
    test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", g.var, m.g.var);
    test::check_agrees("g cov", g.corr * g.var, m.g.cov);
}

TEST_CASE("compose: DSLM-style residual (lambda^2 + beta^2 = 1) agrees with the Monte-Carlo validator") {
    // Branch linear -> relu -> linear -> dropout with the DSLM FFN init: sigma^2 =
    // sqrt((1-p)/2)/d for both weights (d_ff = 2d here, so the product is scaled to keep
    // the branch at unit variance), lambda^2 = 0.8, beta^2 = 0.2.
    const int d = 32, dff = 64;
    const double p = 0.1;
    const double s2 = std::sqrt((1 - p) * 2.0 / (double(d) * dff));
    const linear<double> l1{d, dff, std::sqrt(s2)}, l2{dff, d, std::sqrt(s2)};
    const double lambda = std::sqrt(0.8), beta = std::sqrt(0.2);
    const auto block = residual(serial(l1, relu<double>{}, l2, dropout<double>{p}), lambda, beta);
    auto model = validation::make_residual_model(
        validation::make_serial_model(validation::linear_model{l1, {}}, validation::relu_model{},
                                      validation::linear_model{l2, {}}, validation::dropout_model{{p}, {}}),
        lambda, beta);
    validation::experiment_input in;
    in.x = {0, 1, 0.5};
    in.g = {1, 0.4};
    in.tokens = 8;
    in.width = d;
    const auto m = validation::measure_model(model, in, validation::run_options{23, 2, 600, 20});
    const auto y = forward(block, in.x);
    const auto g = backward(block, in.x, in.g);
    CHECK(y.var == doctest::Approx(1.0).epsilon(1e-12));  // the scheme keeps unit variance
    test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", g.var, m.g.var);
    test::check_agrees("g cov", g.corr * g.var, m.g.cov);
}
