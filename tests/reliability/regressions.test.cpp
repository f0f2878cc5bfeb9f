// Inputs the fuzzers of fuzz/ found to break an invariant, kept as exact regression
// tests once fixed (docs/RELIABILITY.md, "Defects found").
#include <doctest/doctest.h>

#include <climits>
#include <cmath>
#include <limits>

#include "reliability/checks.hpp"
#include "sigprop/sigprop.hpp"

using namespace sigprop;

TEST_CASE_TEMPLATE("reliability: the paper's softmax variance overflows to +inf, never NaN", T, float, double,
                   long double) {
    // s = (1 - corr) var near the largest finite value: both halves of the log-space
    // expression overflowed and met as inf - inf.
    const T big = std::numeric_limits<T>::max();
    for (int L : {2, 1000})
        for (T corr : {T(-1), T(0)}) {
            const signal<T> x{0, big, corr};
            CHECK(forward(softmax<T>{L, form::paper}, x).var == std::numeric_limits<T>::infinity());
            CHECK(backward(softmax<T>{L, form::paper}, x, gradient<T>{1, 0}).var == std::numeric_limits<T>::infinity());
        }
}

TEST_CASE("reliability: a zero gradient through an overflowed softmax stays zero") {
    // g.var = 0 met an infinite softmax factor (0 * inf = NaN) in the paper's forms; in
    // ours g.var (1 - g.corr) overflowed while the saturated softmax's factor was 0.
    const double big = std::numeric_limits<double>::max();
    for (form f : {form::paper, form::paper_large_l})
        CHECK(backward(softmax<double>{2, f}, signal<double>{0, 1e3, 0}, gradient<double>{0, 1}).var == 0);
    const gradient<double> d = backward(softmax<double>{2}, signal<double>{0, big, -1}, gradient<double>{big, -1});
    CHECK(d.var == 0);
    CHECK(reliability::good(d));
}

TEST_CASE("reliability: predict accepts d_model = INT_MAX without integer overflow") {
    // The LayerNorm series was sized with the int d_model + 1 (undefined behaviour at
    // INT_MAX, reported by UBSan in scripts/test-sanitizers.sh).
    transformer_spec<double> s;
    s.layers = 1;
    s.d_model = INT_MAX;
    s.heads = 1;
    s.d_ff = 1;
    s.seq_len = 2;
    s.sigmas.assign(1, layer_sigmas<double>{});
    const trajectory<double> tr = predict(s);
    REQUIRE(!tr.points.empty());
    CHECK(reliability::good(tr.points.back().x));
}

TEST_CASE_TEMPLATE("reliability: multi-head attention with sigma_v = 0 passes no gradient, even past overflow", T,
                   float, double) {
    // d_model sigma_o^2 g.var overflows to +inf inside the component; the head's
    // sigma_v * sqrt(g.var) was then 0 * inf = NaN. With sigma_v = 0 the gradient is 0.
    for (bool causal : {false, true}) {
        const multi_head_attention<T> m{1838, 1, 3489, 0, 0, 0, T(0.99999988), 0, causal};
        const gradient<T> d = backward(m, signal<T>{0, std::numeric_limits<T>::min(), 0},
                                       gradient<T>{std::numeric_limits<T>::max(), T(0.5)});
        CHECK(d.var == 0);
        CHECK(d.corr >= -1);
        CHECK(d.corr <= 1);
    }
}

TEST_CASE("reliability: predict never gives a negative or NaN gradient variance through the key path") {
    // The config fuzzer's first seed (docs/RELIABILITY.md, defect 6): with the output
    // gradient anti-correlated across tokens (r_g = -1) and a correlated stream, the key
    // path's own bracket went negative (-0.017 at layer 0's FFN boundary, NaN below it).
    transformer_spec<double> s;
    s.layers = 2;
    s.d_model = 8;
    s.d_ff = 16;
    s.heads = 2;
    s.seq_len = 4;
    s.norm = norm_placement::post;
    s.final_norm = true;
    s.act = activation::relu;
    s.arch = architecture::decoder;
    s.p_hidden = 0.1;
    s.input = {0.5, 1e-12, 1};
    s.output_gradient = {1, -1};
    s.sigmas = {{0.02, 0.02, 1, 1, 0, 1e6, 0.02, 0.02, 0.02, 0.02}, {1, 1, 1, 1, 1, 1, 0.02, 0.02, 0.02, 0.02}};
    const trajectory<double> t = predict(s);
    for (const auto& p : t.points) {
        CHECK(reliability::good(p.x));
        CHECK(reliability::good(p.g));
    }
    for (const auto& w : t.weight_grads)
        for (double v : {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2}) CHECK(v >= 0);
}

TEST_CASE("reliability: a residual whose two weighted means overflow with opposite signs has no NaN mean") {
    // fuzz_formulas (docs/RELIABILITY.md, defect 10): lambda mu = -inf and beta mu_F = +inf
    // met as -inf + inf.
    using T = long double;
    const T big = std::numeric_limits<T>::max();
    const auto branch = serial(linear<T>{768, 1, std::numeric_limits<T>::min()}, relu<T>{});
    const signal<T> x{-big, 2, 0.5L};
    const signal<T> y = forward(residual(branch, T(2), big), x);
    CHECK(!std::isnan(y.mean));
    CHECK(!std::isnan(y.var));
    // Both products overflow, the sum does not: 4 (-M/2) + 3 (M/2) = -M/2, exactly.
    CHECK(detail::weighted_sum(T(4), -big / 2, T(3), big / 2) == -big / 2);
}
