// Inputs the fuzzers of fuzz/ found to break an invariant, kept as exact regression
// tests once fixed (docs/RELIABILITY.md, "Defects found").
#include <doctest/doctest.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

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

TEST_CASE("reliability: an attention head with sigma_v = 0 silences an overflowed input in the forward") {
    // The predict fuzzer's finding of 2026-11-28 (fuzz/corpus/predict/zero-value-weight-
    // overflowed-mean): a Post-LN stack folds an input mean of -DBL_MAX into the attention
    // input's variance (+inf); with sigma_v = 0 the head's sigma_v sqrt(var) was 0 * inf =
    // NaN, and the NaN reached every later correlation. A zero value projection gives 0.
    transformer_spec<double> s;
    s.layers = 1;
    s.d_model = 36;
    s.d_ff = 768;
    s.heads = 1;
    s.seq_len = 768;
    s.source_len = 768;
    s.norm = norm_placement::post;
    s.final_norm = true;
    s.arch = architecture::encoder_decoder;
    s.p_attention = 1e-12;
    s.lambda = 0.5;
    s.beta = std::numeric_limits<double>::min();
    s.sigmas = {layer_sigmas<double>{0, 0, 0, 1.22416e-250, 1, 1, 1, 1, 1, 1},
                layer_sigmas<double>{1, 1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0}};
    s.input = {-std::numeric_limits<double>::max(), 5.65602e-317, 0};
    s.output_gradient = {0, 0};
    const trajectory<double> tr = predict(s);
    for (const auto& p : tr.points) {
        CHECK(reliability::good(p.x));
        CHECK(reliability::good(p.g));
    }
    for (bool causal : {false, true}) {
        const signal<double> inf_var{0, std::numeric_limits<double>::infinity(), 1};
        const multi_head_attention<double> m{36, 1, 768, 0, 0, 0, 1, 0, causal};
        const auto st = detail::self_statistics(m, inf_var);
        const auto h = detail::head_of(m);
        const signal<double> y = causal ? detail::causal_head_forward(h, inf_var, st.sc, st.cs)
                                        : detail::forward_impl(h, inf_var, st.sc);
        CHECK(y.var == 0);
        CHECK(reliability::good(y));
    }
}

TEST_CASE("reliability: the stream's anisotropy stays finite when its token-specific variance is subnormal") {
    // The predict fuzzer's finding of 2026-11-28 (fuzz/corpus/predict/subnormal-stream-
    // cross-anisotropy): an encoder with beta = 0 carries an input variance of 4.9e-324, so
    // the anisotropy rule's 1/(t_a + t_b) was +inf, the encoder output's anisotropy +inf,
    // and with an uncorrelated gradient the cross-attention's query/key bracket took
    // 0 * inf = NaN for both weight norms. The shares are now ta/t and tb/t.
    const double tiny = std::numeric_limits<double>::denorm_min();
    CHECK(detail::mixed_anisotropy(2.0, tiny, 3.0, tiny) == doctest::Approx(1.75));
    CHECK(detail::mixed_anisotropy(2.0, 0.0, 3.0, tiny) == doctest::Approx(3.0));
    transformer_spec<double> s;
    s.layers = 3;
    s.d_model = s.d_ff = s.heads = std::numeric_limits<int>::max();
    s.seq_len = 2;
    s.norm = norm_placement::pre;
    s.act = activation::relu;
    s.arch = architecture::encoder_decoder;
    s.p_embedding = 2.12922e-210;
    s.lambda = 2;
    s.beta = 0;
    s.decoder_beta = 0.5;
    s.sigmas.assign(6, layer_sigmas<double>{0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02});
    s.input = {1e12, tiny, -0.129381};
    s.output_gradient = {std::numeric_limits<double>::max(), 0};
    const trajectory<double> tr = predict(s);
    for (const auto& p : tr.points) {
        CHECK(reliability::good(p.x));
        CHECK(reliability::good(p.g));
    }
    for (const auto& w : tr.weight_grads)
        for (double v : {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2, w.cross_q, w.cross_k, w.cross_v, w.cross_o})
            CHECK(reliability::good_var(v));
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

TEST_CASE_TEMPLATE("reliability: Zipf's same-row probability at an exponent whose double overflows is 1, not NaN", T,
                   float, double, long double) {
    // fuzz_formulas (docs/RELIABILITY.md, defect 12; float, V = 16, a = FLT_MAX): q needs
    // H(V, 2a), and 2a = +inf made the Euler-Maclaurin integral (1 - s) ln(V/16) = inf * 0
    // at V = 16. As a -> inf all the mass is on the first token, so q -> 1.
    const T big = std::numeric_limits<T>::max();
    for (std::uint64_t V : {std::uint64_t(15), std::uint64_t(16), std::uint64_t(17), std::uint64_t(1) << 40})
        CHECK(same_row_probability_zipf<T>(V, big) == T(1));
}

TEST_CASE_TEMPLATE("reliability: attention's best-form forward variance never exceeds its convexity bound", T, float,
                   double, long double) {
    // Defect 8: with d_in = d_head = 8, L = 2, x.var = 1, sigma_v = 1 the delta-method
    // bracket gave 2.0e29 at sigma_q = sigma_k = 1 and +inf from 2 on. The true variance
    // is at most L d_in sigma_v^2 x.var / (1 - p) (see best_var_bracket).
    // The bound itself is reached (up to rounding) where the cap binds.
    const T slack = T(1) + T(16) * std::numeric_limits<T>::epsilon();
    for (T p : {T(0), T(0.5)})
        for (T s : {T(1), T(2), T(1e3)}) {
            const T bound = T(2) * T(8) / (T(1) - p) * slack;
            const signal<T> y = forward(attention<T>{8, 8, 2, s, s, T(1), p}, signal<T>{0, 1, 0});
            CHECK(y.var <= bound);
            CHECK(y.var > T(0));
            CHECK(y.corr >= T(-1));
            CHECK(y.corr <= T(1));
            // The same head inside multi-head attention (one head, sigma_o = 1 on 8 units):
            // the output projection multiplies by d_model sigma_o^2 = 8.
            for (bool causal : {false, true}) {
                const multi_head_attention<T> m{8, 1, 2, s, s, T(1), T(1), p, causal};
                CHECK(forward(m, signal<T>{0, 1, 0}).var <= T(8) * bound);
                // Causal row i sees i keys: var_i <= 64 i/(1 - p), |cov_12| <= 64 sqrt(2)/(1 - p).
                for (int i : {1, 2})
                    CHECK(variance_at(m, signal<T>{0, 1, 0}, i) <= T(64) * T(causal ? i : 2) / (T(1) - p) * slack);
                const T cov_bound = T(64) * (causal ? std::sqrt(T(2)) : T(2)) / (T(1) - p);
                CHECK(covariance_at(m, signal<T>{0, 1, T(0.5)}, 1, 2) <= cov_bound * slack);
            }
        }
}

TEST_CASE_TEMPLATE("reliability: predict's cross-attention head keeps attention's convexity bound", T, float, double,
                   long double) {
    // The cross head of an encoder-decoder evaluates the same delta-method bracket with its
    // own scores; with huge query/key scales it grew without bound like defect 8. Units:
    // d sigma_v^2 e.var, times L_s/(1 - p) at most.
    const T slack = T(1) + T(16) * std::numeric_limits<T>::epsilon();
    const signal<T> u{0, 1, T(0.5)}, e{0, 1, 0};
    for (T p : {T(0), T(0.5)})
        for (T s : {T(1), T(2), T(1e3)}) {
            const auto sc = detail::cross_statistics(8, 2, u, e, s, s);
            const signal<T> y = detail::cross_head_forward(8, 2, p, T(1), e, sc);
            CHECK(y.var <= T(8) * T(2) / (T(1) - p) * slack);
            CHECK(y.var > T(0));
            CHECK(y.corr >= T(-1));
            CHECK(y.corr <= T(1));
        }
}

TEST_CASE_TEMPLATE("reliability: causal attention's position moments at zero input variance are 0 past overflowed sigmas",
                   T, float, double, long double) {
    // fuzz_formulas (long double): variance_at formed sigma_o sigma_v sqrt(x.var) as
    // inf * 0 = NaN with sigma_o = sigma_v = max and x.var = 0.
    const T big = std::numeric_limits<T>::max();
    const multi_head_attention<T> m{165, 3, 4008, 0, big, big, big, 0, true};
    const signal<T> x{0, 0, std::numeric_limits<T>::min()};
    CHECK(variance_at(m, x, 3) == T(0));
    CHECK(covariance_at(m, x, 3, 2465) == T(0));
}

TEST_CASE_TEMPLATE("reliability: the same-row probability of huge block counts is finite in every precision", T, float,
                   double, long double) {
    // Found while checking defect 12's pattern: sum n_k (n_k - 1) / (L (L - 1)) overflowed
    // a float in both sums (inf / inf = NaN) for 30 counts of 9e18; q = 1/30.
    const std::vector<long long> counts(30, 9000000000000000000LL);
    CHECK(double(same_row_probability_counts<T>(counts)) == doctest::Approx(1.0 / 30).epsilon(1e-6));
}

TEST_CASE("reliability: the key norms' spread of a head of width INT_MAX") {
    // Defect 19 (fuzz_formulas, float multi-head attention): column_spread formed
    // d_head + 1 in int, a signed overflow (undefined behaviour) at d_head = INT_MAX; the
    // sanitizer suite stops at it. It is formed in the scalar type now.
    const attention<double> c{64, std::numeric_limits<int>::max(), 32, 0.125, 0.125, 0.125, 0, form::best};
    const gradient<double> g = backward(c, signal<double>{0, 1, 0.2}, gradient<double>{1, 0.5});
    CHECK(std::isfinite(g.var));
    CHECK(g.var > 0);
}

namespace {
// A two-layer encoder whose attention outputs overflow (sigma_v = 1e200: sigma_v^2 is
// +inf in double) and whose layer-1 attention has sigma_o = 0. (Huge query/key scales no
// longer overflow the output: its variance is capped by the convexity bound, defect 8.)
transformer_spec<double> overflowing_attention_spec(norm_placement norm, double lambda) {
    transformer_spec<double> s;
    s.layers = 2;
    s.d_model = 8;
    s.d_ff = 8;
    s.heads = 1;
    s.seq_len = 4;
    s.norm = norm;
    s.final_norm = false;
    s.arch = architecture::encoder;
    s.lambda = lambda;
    s.input = {0, 1, 0.5};
    s.output_gradient = {1, 0.5};
    layer_sigmas<double> w;
    w.q = w.k = w.o = w.ffn1 = w.ffn2 = 1;
    w.v = 1e200;
    s.sigmas = {w, w};
    s.sigmas[1].o = 0;
    return s;
}

void check_invariants(const trajectory<double>& t) {
    bool any_inf = false;
    for (const auto& p : t.points) {
        CHECK(reliability::good(p.x));
        CHECK(reliability::good(p.g));
        any_inf = any_inf || std::isinf(p.x.var) || std::isinf(p.g.var);
    }
    for (const auto& w : t.weight_grads)
        for (double v : {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2}) {
            CHECK(reliability::good_var(v));
            any_inf = any_inf || std::isinf(v);
        }
    CHECK(any_inf == (t.overflow_layer >= 0));
}
}  // namespace

TEST_CASE("reliability: predict keeps +inf downstream of an overflowed attention output in a pre-LN stack") {
    // Defect 6, forward class: the stream's variance is +inf after layer 0; layer 1's
    // attention output is +inf again and met sigma_o = 0 in the output projection as
    // 0 * inf (NaN at layer 1's attention boundary). A zero weight matrix maps anything to 0.
    const trajectory<double> t = predict(overflowing_attention_spec(norm_placement::pre, 1));
    check_invariants(t);
    REQUIRE(t.points.size() == 5);
    CHECK(t.points[1].x.var == std::numeric_limits<double>::infinity());
    CHECK(t.points[3].x.var == std::numeric_limits<double>::infinity());  // lambda x + 0 with x.var = inf
    CHECK(t.overflow_layer == 0);
    // The component on its own: W = 0 silences an overflowed input and gradient.
    const signal<double> y = detail::forward_impl(linear<double>{8, 8, 0}, signal<double>{0, HUGE_VAL, 0.5});
    CHECK(y.var == 0);
    CHECK(y.corr == 0.5);
    CHECK(detail::backward_impl(linear<double>{8, 8, 0}, y, gradient<double>{HUGE_VAL, 0.5}).var == 0);
    // An overflowed variance with a finite mean keeps its correlation (only an infinite
    // mean makes every token equal).
    CHECK(detail::forward_impl(linear<double>{8, 8, 1}, signal<double>{2, HUGE_VAL, 0.5}).corr == 0.5);
    CHECK(detail::forward_impl(linear<double>{8, 8, 1}, signal<double>{HUGE_VAL, 1, 0.5}).corr == 1);
}

TEST_CASE("reliability: predict has no NaN correlation behind a post-LN LayerNorm with lambda = 3e5") {
    // Defect 6, post-LN class: the same 0 * inf in the output projection hid behind the
    // LayerNorm, which returns variance 1 and passed the NaN on as the token correlation.
    // Layer 0 stays finite here, so that the stream reaching layer 1 is not fully
    // correlated (an overflowed layer 0 leaves corr 1).
    transformer_spec<double> s = overflowing_attention_spec(norm_placement::post, 3e5);
    s.sigmas[0].v = 1;
    const trajectory<double> t = predict(s);
    check_invariants(t);
    CHECK(t.points.back().x.var == 1);
}

TEST_CASE("reliability: predict's value-path gradient variance is never negative") {
    // Defect 6, backward class: the V path's bracket r_g E c^2 + (1 - r_g) E sum P^2 is
    // negative for r_g below -1/(L-1) (not realisable, but the spec accepts any r_g) when
    // the column sums are large; the variance is clamped at 0 as the component's total is.
    transformer_spec<double> s = overflowing_attention_spec(norm_placement::pre, 1);
    s.seq_len = 64;
    s.layers = 1;
    s.sigmas = {layer_sigmas<double>{1, 1, 1, 1, 1, 1}};
    s.input = {0, 1, 0.9};
    s.output_gradient = {1, -0.5};
    const trajectory<double> t = predict(s);
    check_invariants(t);
    const double r = t.points[0].x.corr;
    const auto sc = detail::score_statistics(8, 64, 1.0, r, 1.0, 1.0);
    const auto sm = detail::bidirectional_softmax(8, 8 / s.heads, 64, r, sc);
    CHECK(0.5 * sm.col2 > 1.5 * sm.p2);  // the regime: -0.5 E c^2 outweighs 1.5 E sum P^2
}

TEST_CASE("reliability: a pre-LN stack whose stream underflows keeps going") {
    // Defect 7: lambda < 1 and a silent branch (sigma_v = 0) shrink the stream's variance by
    // lambda^2 per layer; after about 540 layers it underflowed to an exact 0 and the next
    // layer_norm threw invalid_argument for this valid input. The sum now stays at the
    // smallest positive double, and the LayerNorm (scale-invariant) passes the correlation.
    const int d = 16;
    const multi_head_attention<double> silent{d, 2, 8, 1, 1, 0, 1, 0, false};
    const auto stack = repeat(2000, residual(serial(layer_norm<double>{d}, silent), 0.5, 1.0));
    const signal<double> x{0, 1, 0.25};
    const signal<double> y = forward(stack, x);
    CHECK(y.var == std::numeric_limits<double>::denorm_min());
    CHECK(y.corr == 0.25);
    const gradient<double> g = backward(stack, x, gradient<double>{1, 0.5});
    CHECK(reliability::good(g));
    // The skip path's 0.5^4000 g.var underflows the same way (the silent branch adds 0).
    CHECK(g.var == std::numeric_limits<double>::denorm_min());
    CHECK(g.corr == 0.5);
    // The rule itself: a positive term that underflows keeps the sum positive.
    double var = -1, corr = 2;
    detail::add_weighted(1e-200, 1e-200, 0.3, 1.0, 0.0, -0.7, var, corr);
    CHECK(var == std::numeric_limits<double>::denorm_min());
    CHECK(corr == 0.3);
    detail::add_weighted(0.0, 1.0, 0.3, 1.0, 0.0, -0.7, var, corr);
    CHECK(var == 0);  // nothing is really there: an exact 0
}
