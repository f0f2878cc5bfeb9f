#include <cmath>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include <doctest/doctest.h>

#include "sigprop/components/attention.hpp"
#include "sigprop/components/linear.hpp"
#include "sigprop/components/multi_head_attention.hpp"
#include "sigprop/compose.hpp"
#include "sigprop/validation/components/multi_head_attention.hpp"
#include "support/agreement.hpp"

using namespace sigprop;

namespace {

// sigma_q = sigma_k = q / sqrt(d), sigma_v = sigma_o = 1 / sqrt(d): the paper's grid convention.
template <class T>
multi_head_attention<T> make(int d, int heads, int L, double q, double p, bool causal) {
    const double s = 1.0 / std::sqrt(double(d));
    return {d, heads, L, T(q * s), T(q * s), T(s), T(s), T(p), causal, form::best};
}

double harmonic(int L) {
    double h = 0;
    for (int i = 1; i <= L; ++i) h += 1.0 / i;
    return h;
}

}  // namespace

TEST_CASE_TEMPLATE("multi_head_attention: zero query/key scale is exact, causal and not", T, float, double, long double) {
    // P_ij = 1/L (or 1/i under the mask). d = 48, 4 heads of 12, L = 10.
    const int d = 48, h = 4, L = 10;
    const double sv = 0.2, so = 0.15, p = 0.25, k = p / (1 - p), s2 = 1.5, r = 0.4, s2g = 0.7, rg = 0.3;
    const double scale = d * so * so * d * sv * sv * s2;       // d sigma_o^2 m_v s2
    const double gscale = h * (d * so * so * s2g) * (d / h) * sv * sv;  // heads * U with G Wo^T
    const signal<T> x{T(0), T(s2), T(r)};
    const gradient<T> g{T(s2g), T(rg)};
    const double eps = std::is_same_v<T, float> ? 2e-5 : 1e-11;
    for (bool causal : {false, true}) {
        const multi_head_attention<T> c{d, h, L, T(0), T(0.3), T(sv), T(so), T(p), causal};
        const auto y = forward(c, x);
        const auto b = backward(c, x, g);
        // Average of 1/(row length), average squared column sum, pair average of shared keys.
        const double hl = causal ? harmonic(L) / L : 1.0 / L;
        const double col2 = causal ? 2 - hl : 1.0;
        const double pair = causal ? 2 * (L - harmonic(L)) / (L * (L - 1.0)) : 1.0 / L;
        const double var = scale * (r * (1 + k * hl) + (1 - r) * hl / (1 - p));
        const double cov = scale * (r + (1 - r) * pair);
        const double gvar = gscale * (rg * (col2 + k * hl) + (1 - rg) * hl / (1 - p));
        const double gcov = gscale * (rg * (1 - (col2 - 1) / (L - 1)) + (1 - rg) * (1 - hl) / (L - 1));
        INFO("causal " << causal);
        CHECK(y.mean == T(0));
        CHECK(double(y.var) == doctest::Approx(var).epsilon(eps));
        CHECK(double(y.corr) == doctest::Approx(cov / var).epsilon(eps));
        CHECK(double(b.var) == doctest::Approx(gvar).epsilon(eps));
        CHECK(double(b.corr) == doctest::Approx(gcov / gvar).epsilon(eps));
        // Position-resolved: row i averages i keys.
        for (int i = 1; i <= L; ++i) {
            const double n = causal ? i : L;
            CHECK(double(variance_at(c, x, i)) == doctest::Approx(scale * (r * (1 + k / n) + (1 - r) / ((1 - p) * n))).epsilon(eps));
            for (int j = 1; j <= L; ++j)
                if (j != i)
                    CHECK(double(covariance_at(c, x, i, j)) ==
                          doctest::Approx(scale * (r + (1 - r) / (causal ? std::max(i, j) : L))).epsilon(eps));
        }
    }
}

TEST_CASE_TEMPLATE("multi_head_attention: heads combine as derived", T, float, double, long double) {
    const signal<T> x{T(0), T(1.2), T(0.3)};
    const gradient<T> g{T(0.9), T(0.2)};
    const double eps = std::is_same_v<T, float> ? 2e-5 : 1e-12;
    // Without the mask: one head's attention followed by the output projection (serial),
    // and the backward of `heads` independent heads adds up.
    const auto c = make<T>(64, 8, 32, 0.7, 0.1, false);
    const attention<T> head{64, 8, 32, c.sigma_q, c.sigma_k, c.sigma_v, c.p};
    const linear<T> out{64, 64, c.sigma_o};
    const auto y = forward(c, x), ys = forward(serial(head, out), x);
    CHECK(double(y.var) == doctest::Approx(double(ys.var)).epsilon(eps));
    CHECK(double(y.corr) == doctest::Approx(double(ys.corr)).epsilon(eps));
    const auto b = backward(c, x, g), bs = backward(serial(head, out), x, g);
    CHECK(double(b.var) == doctest::Approx(8 * double(bs.var)).epsilon(eps));
    CHECK(double(b.corr) == doctest::Approx(double(bs.corr)).epsilon(eps));
    // The paper's form is selectable for the heads (no mask only).
    auto cp = c;
    cp.form = form::paper;
    auto hp = head;
    hp.form = form::paper;
    CHECK(double(forward(cp, x).var) == doctest::Approx(double(forward(serial(hp, out), x).var)).epsilon(eps));
    // Causal: the sequence average is the mean of the position-resolved variances.
    for (double q : {0.0, 0.5, 1.0}) {
        const auto cc = make<T>(64, 4, 24, q, 0.2, true);
        double sum = 0;
        for (int i = 1; i <= 24; ++i) sum += double(variance_at(cc, x, i));
        CHECK(double(forward(cc, x).var) == doctest::Approx(sum / 24).epsilon(eps));
        double csum = 0;  // and the pair average of covariance_at, exactly at q = 0
        for (int i = 1; i <= 24; ++i)
            for (int j = 1; j <= 24; ++j)
                if (i != j) csum += double(covariance_at(cc, x, i, j));
        const auto yc = forward(cc, x);
        if (q == 0.0) CHECK(double(yc.corr * yc.var) == doctest::Approx(csum / (24 * 23)).epsilon(eps));
    }
    // Rank collapse: causal attention is less correlated than uniform attention over all keys.
    CHECK(forward(make<T>(64, 4, 24, 0.0, 0.0, true), x).corr < forward(make<T>(64, 4, 24, 0.0, 0.0, false), x).corr);
}

TEST_CASE_TEMPLATE("multi_head_attention: property sweep over random valid inputs", T, float, double, long double) {
    std::mt19937_64 rng(7);
    auto uni = [&](double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng); };
    for (int n = 0; n < 1500; ++n) {
        const int heads = 1 + int(uni(0, 16)), d = heads * (1 + int(uni(0, 128))), L = 2 + int(uni(0, 600));
        const bool causal = n % 2 == 0;
        const multi_head_attention<T> c{d, heads, L, T(std::pow(10.0, uni(-6, 1)) / std::sqrt(d)),
                                        T(std::pow(10.0, uni(-6, 1)) / std::sqrt(d)), T(std::pow(10.0, uni(-4, 4))),
                                        T(std::pow(10.0, uni(-4, 4))), T(uni(0, 0.99)), causal,
                                        !causal && n % 3 == 0 ? form::paper : form::best};
        const signal<T> x{T(0), T(n % 50 == 1 ? 0.0 : std::pow(10.0, uni(-6, 3))), T(n % 7 == 0 ? 1.0 : uni(-1, 1))};
        const gradient<T> g{T(std::pow(10.0, uni(-6, 6))), T(n % 11 == 0 ? -1.0 : uni(-1, 1))};
        const auto y = forward(c, x);
        const auto b = backward(c, x, g);
        const T vi = variance_at(c, x, 1 + n % L);
        INFO("n = " << n << " vi " << double(vi) << " var " << double(x.var) << " r " << double(x.corr));
        CHECK((y.var >= T(0) && !std::isnan(double(y.var))));
        CHECK((y.corr >= T(-1) && y.corr <= T(1)));
        CHECK((b.var >= T(0) && !std::isnan(double(b.var))));
        CHECK((b.corr >= T(-1) && b.corr <= T(1)));
        CHECK((vi >= T(0) && !std::isnan(double(vi))));
    }
    // Huge query/key scale: the convexity bound of a head (L d_in sigma_v^2 s2 / (1 - p),
    // causal: the rows' average, L -> (L + 1)/2) times d_model sigma_o^2, never NaN.
    for (bool causal : {false, true}) {
        const multi_head_attention<T> c{256, 4, 64, T(1e30), T(1e30), T(1), T(1), T(0.1), causal};
        const T bound = T(256) * (causal ? T(32.5) : T(64)) * T(256) * T(2) / (T(1) - T(0.1));
        for (T r : {T(-1), T(0), T(0.5), T(1)}) {
            const auto y = forward(c, signal<T>{T(0), T(2), r});
            const auto b = backward(c, signal<T>{T(0), T(2), r}, gradient<T>{T(1), T(0.5)});
            CHECK(!std::isnan(double(y.var)));
            CHECK(!std::isnan(double(y.corr)));
            CHECK(!std::isnan(double(b.var)));
            CHECK(!std::isnan(double(b.corr)));
            if (r < T(1)) CHECK(double(y.var) == doctest::Approx(double(bound)).epsilon(1e-6));
        }
    }
}

TEST_CASE("multi_head_attention: bad input throws sigprop::invalid_argument naming the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    const multi_head_attention<double> ok{16, 4, 8, 0.1, 0.1, 0.2, 0.2, 0.1};
    const signal<double> x{0, 1, 0.2};
    const gradient<double> g{1, 0.3};
    auto with = [&](auto edit) { auto c = ok; edit(c); return c; };
    const std::string pre = "sigprop::multi_head_attention: ";
    const std::vector<std::tuple<multi_head_attention<double>, signal<double>, gradient<double>, std::string>> cases{
        {with([](auto& c) { c.d_model = 0; }), x, g, pre + "d_model = 0 is outside the valid range [1, inf)"},
        {with([](auto& c) { c.heads = 0; }), x, g, pre + "heads = 0 is outside the valid range [1, inf)"},
        {with([](auto& c) { c.heads = 3; }), x, g,
         pre + "heads = 3 is outside the valid range {divisors of d_model = 16} (d_model must be divisible by heads)"},
        {with([](auto& c) { c.L = 1; }), x, g, pre + "L = 1 is outside the valid range [2, inf)"},
        {with([](auto& c) { c.sigma_q = -1; }), x, g, pre + "sigma_q = -1 is outside the valid range [0, inf) (finite)"},
        {with([&](auto& c) { c.sigma_k = nan; }), x, g, pre + "sigma_k = nan is outside the valid range [0, inf) (finite)"},
        {with([&](auto& c) { c.sigma_v = inf; }), x, g, pre + "sigma_v = inf is outside the valid range [0, inf) (finite)"},
        {with([](auto& c) { c.sigma_o = -0.5; }), x, g, pre + "sigma_o = -0.5 is outside the valid range [0, inf) (finite)"},
        {with([](auto& c) { c.p = 1; }), x, g, pre + "p = 1 is outside the valid range [0, 1)"},
        {with([](auto& c) { c.form = form::paper_large_l; }), x, g, pre + "form = paper_large_l is outside the valid range {best, paper}"},
        {with([](auto& c) { c.causal = true; c.form = form::paper; }), x, g,
         pre + "form = paper is outside the valid range {best} (causal attention has no published form)"},
        {ok, signal<double>{0.5, 1, 0.2}, g, pre + "x.mean = 0.5 is outside the valid range {0}"},
        {ok, signal<double>{0, -1, 0.2}, g, pre + "x.var = -1 is outside the valid range [0, inf) (finite)"},
        {ok, signal<double>{0, 1, 1.5}, g, pre + "x.corr = 1.5 is outside the valid range [-1, 1]"},
        {ok, x, gradient<double>{-1, 0}, pre + "g.var = -1 is outside the valid range [0, inf) (finite)"},
        {ok, x, gradient<double>{1, nan}, pre + "g.corr = nan is outside the valid range [-1, 1]"},
    };
    for (const auto& [c, xi, gi, msg] : cases) {
        INFO(msg);
        CHECK_THROWS_WITH_AS(backward(c, xi, gi), msg.c_str(), sigprop::invalid_argument);
        if (gi.var == g.var && gi.corr == g.corr) CHECK_THROWS_WITH_AS(forward(c, xi), msg.c_str(), sigprop::invalid_argument);
    }
    auto causal = ok;
    causal.causal = true;
    CHECK_THROWS_WITH_AS(variance_at(causal, x, 0), (pre + "i = 0 is outside the valid range [1, L = 8]").c_str(), sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(covariance_at(causal, x, 2, 9), (pre + "j = 9 is outside the valid range [1, L = 8]").c_str(), sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(covariance_at(causal, x, 3, 3), (pre + "j = 3 is outside the valid range [1, L] without i = 3").c_str(),
                         sigprop::invalid_argument);
    CHECK_NOTHROW(backward(causal, x, g));
}

TEST_CASE("multi_head_attention: Monte-Carlo backward agrees with finite differences") {
    // Loss = sum(Y * G) with weights and masks held fixed (the same streams); causal with
    // dropout, and without mask or dropout.
    for (bool causal : {true, false}) {
        const multi_head_attention<double> c{4, 2, 4, 0.9, 0.7, 0.8, 0.6, causal ? 0.3 : 0.0, causal};
        validation::run_options o{3, 9, 2, 2};
        Eigen::MatrixXd x(4, 4), g(4, 4);
        auto st = validation::streams_for(o, 0);
        validation::sample_signal(x, signal<double>{0, 1, 0.2}, st.input);
        validation::sample_gradient(g, gradient<double>{1, 0.1}, st.grad);
        auto loss = [&](const Eigen::MatrixXd& xx) {
            validation::multi_head_attention_model m{c, {}, {}};
            auto s = validation::streams_for(o, 0);
            return m.forward(s, xx).cwiseProduct(g).sum();
        };
        validation::multi_head_attention_model m{c, {}, {}};
        auto s = validation::streams_for(o, 0);
        m.forward(s, x);
        if (causal) {
            CHECK((m.hs[0].mt.array() == 0).any());
            CHECK(m.hs[1].pt(3, 0) == 0.0);  // key 4 is masked for query 1
        }
        const Eigen::MatrixXd dx = m.backward(g);
        const double h = 1e-6;
        for (int i = 0; i < 4; ++i)
            for (int k = 0; k < 4; ++k) {
                Eigen::MatrixXd a = x, b = x;
                a(i, k) += h;
                b(i, k) -= h;
                CHECK(dx(i, k) == doctest::Approx((loss(a) - loss(b)) / (2 * h)).epsilon(1e-6));
            }
    }
}

namespace {
void check_mc(const multi_head_attention<double>& c, double r, double rg, int sequences, std::uint32_t experiment) {
    validation::experiment_input in;
    in.x = {0, 1.2, r};
    in.g = {0.8, rg};
    const auto m = validation::measure(c, in, validation::run_options{31, experiment, sequences, 20});
    const auto y = forward(c, in.x);
    const auto g = backward(c, in.x, in.g);
    INFO("d " << c.d_model << " heads " << c.heads << " L " << c.L << " sigma_q " << c.sigma_q << " p " << c.p
              << " causal " << c.causal << " r " << r << " r_g " << rg);
    test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", g.var, m.g.var);
    test::check_agrees("g cov", g.corr * g.var, m.g.cov);
}
}  // namespace

TEST_CASE("multi_head_attention: agrees with the Monte-Carlo validator without the mask") {
    check_mc(make<double>(32, 4, 32, 0.7, 0.1, false), 0.3, 0.2, 1500, 101);
}

TEST_CASE("multi_head_attention: causal agrees with the Monte-Carlo validator at small query/key scale") {
    check_mc(make<double>(32, 4, 32, 0.3, 0.2, true), 0.4, 0.3, 1500, 102);
}

TEST_CASE("multi_head_attention: causal agrees with the Monte-Carlo validator at larger query/key scale") {
    check_mc(make<double>(32, 2, 32, 0.6, 0.0, true), 0.2, 0.0, 1500, 103);
}

TEST_CASE("multi_head_attention: causal position-resolved variance agrees with the Monte-Carlo validator") {
    // Per position i, the mean square of the output over units and sequences; the standard
    // error from the spread between sequences (independent).
    const auto c = make<double>(32, 4, 16, 0.6, 0.1, true);
    const signal<double> xm{0, 1, 0.3};
    const int sequences = 1200;
    Eigen::ArrayXd sum = Eigen::ArrayXd::Zero(c.L), sum2 = Eigen::ArrayXd::Zero(c.L);
    validation::run_options o{41, 104, sequences, 2};
    Eigen::MatrixXd x(c.L, c.d_model);
    for (int s = 0; s < sequences; ++s) {
        auto st = validation::streams_for(o, s);
        validation::sample_signal(x, xm, st.input);
        validation::multi_head_attention_model m{c, {}, {}};
        const Eigen::ArrayXd ms = m.forward(st, x).array().square().rowwise().mean();
        sum += ms;
        sum2 += ms.square();
    }
    for (int i = 1; i <= c.L; ++i) {
        const double mean = sum(i - 1) / sequences;
        const double se = std::sqrt((sum2(i - 1) / sequences - mean * mean) / (sequences - 1));
        INFO("position " << i);
        test::check_agrees("var_i", variance_at(c, xm, i), validation::measured{mean, se});
    }
}
