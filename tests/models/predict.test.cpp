// predict(spec) against an independent composition of the public components with the
// combinators, internal consistency of the attention path split, overflow, bad specs,
// a property sweep and depth 10^4.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <doctest/doctest.h>

#include "sigprop/compose.hpp"
#include "sigprop/models.hpp"

using namespace sigprop;

namespace {

template <class T>
transformer_spec<T> small_spec(architecture arch, norm_placement norm, activation act) {
    transformer_spec<T> s;
    s.layers = 2;
    s.d_model = 64;
    s.d_ff = 96;
    s.heads = 4;
    s.seq_len = 32;
    s.arch = arch;
    s.norm = norm;
    s.act = act;
    s.p_hidden = T(0.1);
    s.p_attention = T(0.2);
    s.lambda = T(0.9);
    s.beta = T(0.7);
    s.input = {T(0), T(1.5), T(0.3)};
    s.output_gradient = {T(2), T(0.1)};
    s.sigmas.assign(std::size_t(arch == architecture::encoder_decoder ? 4 : 2), {});
    // Different sigmas per layer so that a mixed-up index shows.
    s.sigmas[0] = {T(0.15), T(0.12), T(0.2), T(0.13), T(0.11), T(0.09), T(0.1), T(0.1), T(0.1), T(0.1)};
    s.sigmas[1] = {T(0.1), T(0.14), T(0.16), T(0.12), T(0.13), T(0.1), T(0.1), T(0.1), T(0.1), T(0.1)};
    return s;
}

void check_close(double a, double b, double eps, const std::string& what) {
    INFO(what << ": predict " << a << ", composed " << b);
    CHECK(a == doctest::Approx(b).epsilon(eps));
}

// The hand-composed model: every block written with the public residual/serial combinators.
template <class T, class Act>
void compare_with_composition(const transformer_spec<T>& s, Act act, double eps) {
    const int d = s.d_model, L = s.seq_len;
    const bool pre = s.norm == norm_placement::pre;
    const bool causal = s.arch == architecture::decoder;
    const auto tr = predict(s);
    REQUIRE(tr.points.size() == 5u);
    signal<T> x = s.input;
    std::size_t pi = 0;
    check_close(double(tr.points[pi].x.var), double(x.var), eps, "input var");
    std::vector<signal<T>> ins;
    for (int l = 0; l < s.layers; ++l) {
        const auto& w = s.sigmas[std::size_t(l)];
        const multi_head_attention<T> m{d, s.heads, L, w.q, w.k, w.v, w.o, s.p_attention, causal};
        const dropout<T> dh{s.p_hidden};
        const linear<T> l1{d, s.d_ff, w.ffn1}, l2{s.d_ff, d, w.ffn2};
        signal<T> a, f;
        if (pre) {
            ins.push_back(x);
            a = forward(residual(serial(layer_norm<T>{d}, m, dh), s.lambda, s.beta), x);
            ins.push_back(a);
            f = forward(residual(serial(layer_norm<T>{d}, l1, act, l2, dh), s.lambda, s.beta), a);
        } else {
            ins.push_back(x);
            a = forward(serial(residual(serial(m, dh), s.lambda, s.beta), layer_norm<T>{d}), x);
            ins.push_back(a);
            f = forward(serial(residual(serial(l1, act, l2, dh), s.lambda, s.beta), layer_norm<T>{d}), a);
        }
        ++pi;
        check_close(double(tr.points[pi].x.var), double(a.var), eps, "attention var");
        check_close(double(tr.points[pi].x.corr), double(a.corr), eps, "attention corr");
        ++pi;
        check_close(double(tr.points[pi].x.var), double(f.var), eps, "ffn var");
        check_close(double(tr.points[pi].x.corr), double(f.corr), eps, "ffn corr");
        x = f;
    }
    // Backward: the full model as one serial chain, and the weight gradient of ffn2 and o
    // of the last layer from the composed moments and the formula of the issue.
    const auto& w0 = s.sigmas[0];
    const auto& w1 = s.sigmas[1];
    const multi_head_attention<T> m0{d, s.heads, L, w0.q, w0.k, w0.v, w0.o, s.p_attention, causal};
    const multi_head_attention<T> m1{d, s.heads, L, w1.q, w1.k, w1.v, w1.o, s.p_attention, causal};
    const dropout<T> dh{s.p_hidden};
    const linear<T> a1{d, s.d_ff, w0.ffn1}, a2{s.d_ff, d, w0.ffn2}, b1{d, s.d_ff, w1.ffn1}, b2{s.d_ff, d, w1.ffn2};
    gradient<T> g0;
    if (pre) {
        const auto model = serial(residual(serial(layer_norm<T>{d}, m0, dh), s.lambda, s.beta),
                                  residual(serial(layer_norm<T>{d}, a1, act, a2, dh), s.lambda, s.beta),
                                  residual(serial(layer_norm<T>{d}, m1, dh), s.lambda, s.beta),
                                  residual(serial(layer_norm<T>{d}, b1, act, b2, dh), s.lambda, s.beta));
        g0 = backward(model, s.input, s.output_gradient);
        const gradient<T> g3 = backward(residual(serial(layer_norm<T>{d}, b1, act, b2, dh), s.lambda, s.beta), ins[3],
                                        s.output_gradient);
        check_close(double(tr.points[3].g.var), double(g3.var), eps, "gradient before the last FFN");
    } else {
        // Post-LN: each block's branch backward is the composed components'; the LayerNorm
        // and the skip path take the stack's factors of post_ln.hpp (tested against the
        // Monte-Carlo in post_ln.test.cpp), with the spread of the gradient handed from
        // block to block as predict does.
        detail::post_ln_incoming<T> in{};
        g0 = s.output_gradient;
        auto block = [&](const auto& branch, const signal<T>& xb, bool ffn, bool ln_input) {
            const signal<T> z = forward(residual(branch, s.lambda, s.beta), xb);
            const T skip = s.lambda * s.lambda * xb.var;
            const T grad_corr = backward(layer_norm<T>{d}, z, gradient<T>{T(1), T(1)}).corr;
            const gradient<T> gz =
                detail::post_ln_backward(d, z, skip, detail::post_ln_branch_phi(d, s.d_ff, ffn, s.p_hidden), ln_input, in,
                                         grad_corr, g0);
            const gradient<T> gu = backward(branch, xb, gradient<T>{s.beta * s.beta * gz.var, gz.corr});
            const T kappa = ffn ? T(1) : std::clamp(gz.corr, T(0), T(1));
            const T gs = gz.var * detail::post_ln_skip_factor(d, (z.var - skip) / z.var, kappa);
            const T sv = s.lambda * s.lambda * gs, total = sv + gu.var;
            in = {gu.var / total, T(0)};
            g0 = {total, (sv * gz.corr + gu.var * gu.corr) / total};
        };
        block(serial(b1, act, b2, dh), ins[3], true, true);
        check_close(double(tr.points[3].g.var), double(g0.var), eps, "gradient before the last FFN");
        block(serial(m1, dh), ins[2], false, true);
        block(serial(a1, act, a2, dh), ins[1], true, true);
        block(serial(m0, dh), ins[0], false, false);
    }
    check_close(double(tr.points[0].g.var), double(g0.var), eps, "input gradient var");
    check_close(double(tr.points[0].g.corr), double(g0.corr), eps * 10, "input gradient corr");
    // ffn2 of the last layer (Pre-LN): input act(lin1(LN(x))), gradient at its output
    // beta g_out through the dropout.
    if (pre) {
        const signal<T> h2 = forward(serial(layer_norm<T>{d}, b1, act), ins[3]);
        const T gv = s.beta * s.beta * s.output_gradient.var / (T(1) - s.p_hidden);
        const T gc = s.output_gradient.corr * (T(1) - s.p_hidden);
        const double bracket = double(h2.var + h2.mean * h2.mean) +
                               double(L - 1) * double(h2.corr * h2.var + h2.mean * h2.mean) * double(gc);
        const double want = double(s.d_ff) * d * L * bracket * double(gv);
        check_close(double(tr.weight_grads[1].ffn2), want, eps, "ffn2 weight gradient");
        // o: input the concatenated heads, i.e. one head's output moments.
        const signal<T> u = forward(layer_norm<T>{d}, ins[2]);
        const multi_head_attention<T> no_o{d, s.heads, L, w1.q, w1.k, w1.v, T(1) / std::sqrt(T(d)), s.p_attention, causal};
        const signal<T> heads = forward(no_o, u);  // d (1/d) var_h = var_h
        // The gradient at Wo's output: beta times the gradient after the block (point 3),
        // through the hidden dropout.
        const gradient<T> go{s.beta * s.beta * tr.points[3].g.var / (T(1) - s.p_hidden),
                             tr.points[3].g.corr * (T(1) - s.p_hidden)};
        const double hb = double(heads.var) + double(L - 1) * double(heads.corr * heads.var) * double(go.corr);
        check_close(double(tr.weight_grads[1].o), double(d) * d * L * hb * double(go.var), eps, "o weight gradient");
    }
}

}  // namespace

TEST_CASE_TEMPLATE("models: predict equals the composed components, Pre-LN and Post-LN", T, float, double, long double) {
    const double eps = std::is_same_v<T, float> ? 2e-4 : 1e-9;
    for (auto arch : {architecture::encoder, architecture::decoder})
        for (auto norm : {norm_placement::pre, norm_placement::post}) {
            CAPTURE(int(arch));
            CAPTURE(int(norm));
            auto s = small_spec<T>(arch, norm, activation::relu);
            if (norm == norm_placement::post) s.input.mean = T(0);
            compare_with_composition(s, relu<T>{}, eps);
            s.act = activation::gelu;
            compare_with_composition(s, gelu<T>{}, eps);
        }
}

TEST_CASE("models: the Q, K, V path split adds up to the attention backward") {
    for (bool causal : {false, true})
        for (double r : {0.0, 0.3, 0.9}) {
            const multi_head_attention<double> m{64, 4, 48, 0.2, 0.15, 0.3, 0.1, 0.2, causal};
            const signal<double> u{0, 1.3, r};
            const gradient<double> gh{0.7, 0.25};
            const auto p = detail::self_attention_gradients(m, u, gh);
            const double dh = 16, heads = 4;
            const double sum = heads * dh * (0.3 * 0.3 * p.v.var + 0.2 * 0.2 * p.q.var + 0.15 * 0.15 * p.k.var);
            // backward(mha) takes the gradient at the output of Wo.
            const gradient<double> g_out{gh.var / (64 * 0.1 * 0.1), gh.corr};
            const auto want = backward(m, u, g_out);
            CHECK(sum == doctest::Approx(want.var).epsilon(1e-12));
            const double cov = heads * dh *
                               (0.09 * p.v.var * p.v.corr + 0.04 * p.q.var * p.q.corr + 0.0225 * p.k.var * p.k.corr);
            CHECK(cov == doctest::Approx(want.var * want.corr).epsilon(1e-9));
            // The same sum as predict forms it, and the cached causal forward.
            const auto gi = detail::attention_input_gradient(m, p);
            CHECK(gi.var == doctest::Approx(want.var).epsilon(1e-12));
            CHECK(gi.corr == doctest::Approx(want.corr).epsilon(1e-9));
            if (causal) {
                const auto h = detail::head_of(m);
                const auto st = detail::self_statistics(m, u);
                const auto y = detail::causal_head_forward(h, u, st.sc, st.cs);
                const auto yw = detail::causal_head_forward(h, u);
                CHECK(y.var == yw.var);
                CHECK(y.corr == yw.corr);
            }
        }
}

TEST_CASE("models: cross-attention with identical streams equals self-attention") {
    const int d = 64, heads = 4, L = 40;
    const double sq = 0.2, sk = 0.15, sv = 0.3, p = 0.1;
    for (double r : {0.0, 0.4, 0.8}) {
        const signal<double> u{0, 1.2, r};
        const auto sc = detail::cross_statistics(d, L, u, u, sq, sk);
        const auto y = detail::cross_head_forward(d, L, p, sv, u, sc);
        const attention<double> h{d, d / heads, L, sq, sk, sv, p};
        const auto want = forward(h, u);
        CHECK(y.var == doctest::Approx(want.var).epsilon(1e-12));
        CHECK(y.corr == doctest::Approx(want.corr).epsilon(1e-12));
        const gradient<double> gh{0.8, 0.3};
        const auto cg = detail::cross_backward(d, heads, L, L, p, sq, sk, sv, u, u, sc, gh);
        const auto self = backward(h, u, gh);
        CHECK(cg.decoder.var + cg.encoder.var == doctest::Approx(heads * self.var).epsilon(1e-12));
    }
}

TEST_CASE("models: trajectory layout for every architecture") {
    for (auto arch : {architecture::encoder, architecture::decoder, architecture::encoder_decoder})
        for (bool fin : {false, true}) {
            auto s = small_spec<double>(arch, norm_placement::pre, activation::gelu);
            s.final_norm = fin;
            const auto t = predict(s);
            const std::size_t per_stack = 1 + 2 * 2 + (fin ? 1 : 0);
            const std::size_t want = arch == architecture::encoder_decoder ? per_stack + per_stack + 2 : per_stack;
            CHECK(t.points.size() == want);
            CHECK(t.weight_grads.size() == s.sigmas.size());
            CHECK(t.points.back().g.var == doctest::Approx(s.output_gradient.var));
            CHECK(t.overflow_layer == -1);
            if (fin) CHECK(t.points.back().x.var == 1.0);
            if (arch == architecture::encoder_decoder) {
                CHECK(t.points[per_stack].stack == stack_kind::decoder);
                CHECK(t.points[per_stack + 2].kind == boundary_kind::cross_attention);
                CHECK(t.weight_grads[2].cross_v > 0);
                CHECK(t.weight_grads[2].cross_q > 0);
                CHECK(t.weight_grads[0].cross_v == 0);
                // The encoder's gradient comes only from the cross-attention blocks.
                CHECK(t.points[0].g.var > 0);
            }
        }
}

TEST_CASE("models: DeepNorm encoder-decoder uses the decoder's own lambda") {
    auto s = small_spec<double>(architecture::encoder_decoder, norm_placement::post, activation::relu);
    s.input.mean = 0;
    auto s2 = s;
    s2.decoder_lambda = 3.0;
    const auto a = predict(s), b = predict(s2);
    CHECK(a.points[2].x.var == b.points[2].x.var);  // encoder untouched forward
    CHECK(a.points.back().g.var == b.points.back().g.var);
    CHECK(a.points[6].g.var != b.points[6].g.var);  // decoder input gradient changes
}

TEST_CASE("models: bad specs throw with the field, value and rule") {
    const auto base = small_spec<double>(architecture::encoder, norm_placement::pre, activation::relu);
    struct row {
        const char* what;
        void (*edit)(transformer_spec<double>&);
        const char* needle;
    };
    const row rows[] = {
        {"heads", [](transformer_spec<double>& s) { s.heads = 7; }, "heads = 7 is outside the valid range {divisors of d_model = 64}"},
        {"layers", [](transformer_spec<double>& s) { s.layers = 0; }, "layers = 0"},
        {"sigmas size", [](transformer_spec<double>& s) { s.sigmas.resize(1); }, "sigmas.size() = 1"},
        {"sigma nan", [](transformer_spec<double>& s) { s.sigmas[1].ffn2 = std::nan(""); }, "sigmas[1].ffn2 = nan"},
        {"negative sigma", [](transformer_spec<double>& s) { s.sigmas[0].q = -1; }, "sigmas[0].q = -1"},
        {"missing input", [](transformer_spec<double>& s) { s.input.var = 0; }, "input.var = 0"},
        {"input corr", [](transformer_spec<double>& s) { s.input.corr = 2; }, "input.corr = 2"},
        {"zero embedding", [](transformer_spec<double>& s) { s.embed = embedding<double>{{{0.0, 0.1}}}; }, "embed variance = 0"},
        {"no tables", [](transformer_spec<double>& s) { s.embed = embedding<double>{}; }, "tables.size() = 0"},
        {"p_hidden", [](transformer_spec<double>& s) { s.p_hidden = 1; }, "p_hidden = 1"},
        {"d_model", [](transformer_spec<double>& s) { s.d_model = 3; s.heads = 1; }, "d_model = 3"},
        {"seq_len", [](transformer_spec<double>& s) { s.seq_len = 1; }, "seq_len = 1"},
        {"source_len", [](transformer_spec<double>& s) { s.source_len = 10; }, "source_len = 10"},
        {"lambda", [](transformer_spec<double>& s) { s.lambda = 0; }, "lambda = 0"},
        {"beta", [](transformer_spec<double>& s) { s.beta = std::numeric_limits<double>::infinity(); }, "beta = inf"},
        {"gradient", [](transformer_spec<double>& s) { s.output_gradient.var = -1; }, "output_gradient.var = -1"},
        {"encdec sigmas", [](transformer_spec<double>& s) { s.arch = architecture::encoder_decoder; }, "sigmas.size() = 2 is outside the valid range {4}"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.what);
        auto s = base;
        r.edit(s);
        std::string msg;
        try {
            (void)predict(s);
        } catch (const sigprop::invalid_argument& e) {
            msg = e.what();
        }
        CAPTURE(msg);
        CHECK(msg.find("sigprop::") == 0);
        CHECK(msg.find(r.needle) != std::string::npos);
    }
}

TEST_CASE("models: overflow is infinity at the first exploding layer, never NaN") {
    auto s = small_spec<double>(architecture::encoder, norm_placement::pre, activation::relu);
    s.layers = 400;
    s.lambda = 8;  // the stream grows like 64^n
    s.sigmas.assign(400, {});
    const auto t = predict(s);
    REQUIRE(t.overflow_layer >= 0);
    CHECK(t.overflow_layer < 200);
    bool nan = false;
    for (const auto& p : t.points) nan = nan || std::isnan(p.x.var) || std::isnan(p.x.corr) || std::isnan(p.g.var) || std::isnan(p.g.corr);
    for (const auto& w : t.weight_grads) nan = nan || std::isnan(w.q) || std::isnan(w.k) || std::isnan(w.v) || std::isnan(w.o) || std::isnan(w.ffn1) || std::isnan(w.ffn2);
    CHECK_FALSE(nan);
    const auto& last = t.points.back();
    CHECK(last.x.var == std::numeric_limits<double>::infinity());
    // Post-LN with a huge query/key scale: the softmax overflows, the stream stays normalised.
    auto p = small_spec<double>(architecture::encoder, norm_placement::post, activation::gelu);
    p.input.mean = 0;
    for (auto& w : p.sigmas) w.q = w.k = 1e6;
    const auto tp = predict(p);
    for (const auto& q : tp.points) {
        CHECK_FALSE(std::isnan(q.x.var));
        CHECK_FALSE(std::isnan(q.g.var));
        CHECK_FALSE(std::isnan(q.g.corr));
    }
}

TEST_CASE("models: property sweep over random valid specs") {
    std::mt19937 rng(12345);
    std::uniform_real_distribution<double> u01(0, 1);
    auto pick = [&](int n) { return int(u01(rng) * n); };
    for (int it = 0; it < 150; ++it) {
        transformer_spec<double> s;
        s.arch = architecture(pick(3));
        s.norm = norm_placement(pick(2));
        s.act = activation(pick(2));
        s.layers = 1 + pick(24);
        const int heads[] = {1, 2, 4, 8};
        s.heads = heads[pick(4)];
        s.d_model = s.heads * (4 + pick(40));
        s.d_ff = 4 + pick(300);
        s.seq_len = 2 + pick(100);
        s.source_len = s.arch == architecture::encoder_decoder && pick(2) ? 2 + pick(60) : 0;
        s.final_norm = pick(2);
        s.p_hidden = 0.5 * u01(rng);
        s.p_attention = 0.5 * u01(rng);
        s.p_embedding = 0.5 * u01(rng);
        s.lambda = 0.1 + 2 * u01(rng);
        s.beta = 2 * u01(rng);
        s.input = {pick(2) ? 0.0 : 3 * u01(rng) - 1.5, 0.1 + 5 * u01(rng), u01(rng)};
        if (pick(2)) s.embed = embedding<double>{{{0.5 + u01(rng), 0.2 * u01(rng)}, {u01(rng), 0}}};
        s.output_gradient = {0.1 + u01(rng), u01(rng)};
        s.sigmas.resize(std::size_t(s.arch == architecture::encoder_decoder ? 2 * s.layers : s.layers));
        for (auto& w : s.sigmas) {
            auto r = [&] { return std::pow(10.0, -3 + 3 * u01(rng)); };
            w = {r(), r(), r(), r(), r(), r(), r(), r(), r(), r()};
        }
        CAPTURE(it);
        const auto t = predict(s);
        for (const auto& p : t.points) {
            CHECK_FALSE(std::isnan(p.x.mean));
            CHECK(p.x.var >= 0);
            CHECK((p.x.corr >= -1 && p.x.corr <= 1));
            CHECK(p.g.var >= 0);
            CHECK((p.g.corr >= -1 && p.g.corr <= 1));
        }
        for (const auto& w : t.weight_grads)
            for (double v : {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2, w.cross_q, w.cross_k, w.cross_v, w.cross_o})
                CHECK(v >= 0);  // false for NaN
    }
}

TEST_CASE("models: depth 10^4 works") {
    transformer_spec<double> s;
    s.layers = 10000;
    s.d_model = 256;
    s.d_ff = 1024;
    s.heads = 4;
    s.seq_len = 128;
    apply_xavier(s);
    const auto t = predict(s);
    CHECK(t.points.size() == 20001u);
    CHECK(std::isfinite(t.points.back().x.var));
    CHECK(t.points.back().x.var > t.points[0].x.var);
    CHECK(std::isfinite(t.points[0].g.var));
    CHECK(t.overflow_layer == -1);
}

TEST_CASE_TEMPLATE("models: the cached LayerNorm equals the component", T, float, double, long double) {
    for (int d : {4, 5, 16, 64, 1024})
        for (double r : {-0.3, 0.0, 0.2, 0.7, 0.99, 1.0}) {
            const signal<T> x{T(0.5), T(2), T(r)};
            const gradient<T> g{T(3), T(0.4)};
            const T nu = detail::chi_mean_sq_ratio<T>(d - 1);
            const auto e = detail::layer_norm_eval(d, nu, detail::half_half_2f1_table<T>{}, x);
            const auto y = forward(layer_norm<T>{d}, x);
            const auto b = backward(layer_norm<T>{d}, x, g);
            const auto bc = detail::ln_backward(d, x, e, g);
            CHECK(e.y.corr == y.corr);
            CHECK(e.y.var == y.var);
            CHECK(bc.var == b.var);
            CHECK(bc.corr == b.corr);
        }
}

TEST_CASE_TEMPLATE("models: the tabulated LayerNorm series agrees with the component", T, float, double, long double) {
    // half_half_2f1_table: the series of one width as polynomials in r^2, truncated by the
    // power bound at r = 1; within a few ulps of the component's adaptive series.
    const double tol = 16 * double(std::numeric_limits<T>::epsilon());
    CHECK(detail::half_half_2f1_table_of<T>(41).terms == 0);  // c < 21: the recurrence's range
    for (int d : {41, 64, 100, 1024, 4096}) {
        const T nu = detail::chi_mean_sq_ratio<T>(d - 1);
        const auto table = detail::half_half_2f1_table_of<T>(d + 1);
        // long double at c = 21 needs more than max_terms: the caller's fallback covers it.
        if (d >= 64) REQUIRE(table.terms > 0);
        for (double r : {-0.999, -0.3, 0.0, 1e-3, 0.2, 0.7, 0.9, 0.99, 0.999999, 1.0}) {
            CAPTURE(d);
            CAPTURE(r);
            const signal<T> x{T(0), T(2), T(r)};
            const gradient<T> g{T(3), T(0.4)};
            const auto e = detail::layer_norm_eval(d, nu, table, x);
            const auto y = forward(layer_norm<T>{d}, x);
            const auto b = backward(layer_norm<T>{d}, x, g);
            const auto bc = detail::ln_backward(d, x, e, g);
            CHECK(double(e.y.corr) == doctest::Approx(double(y.corr)).epsilon(tol));
            CHECK(double(bc.corr) == doctest::Approx(double(b.corr)).epsilon(tol));
        }
    }
}

TEST_CASE_TEMPLATE("models: the shared activation evaluation equals the component", T, float, double, long double) {
    for (double v : {1e-6, 0.3, 1.0, 7.0, 1e6})
        for (double r : {-1.0, -0.4, 0.0, 0.5, 0.999, 1.0})
            for (auto a : {activation::relu, activation::gelu}) {
                CAPTURE(v);
                CAPTURE(r);
                const signal<T> x{T(0), T(v), T(r)};
                const gradient<T> g{T(2), T(0.3)};
                const auto e = detail::activation_eval(a, x);
                const auto y = detail::activation_forward(a, x);
                const auto b = detail::activation_backward(a, x, g);
                const auto be = detail::activation_backward(a, x, e, g);
                CHECK(e.y.mean == y.mean);
                CHECK(e.y.var == y.var);
                CHECK(e.y.corr == y.corr);
                CHECK(be.var == b.var);
                CHECK(be.corr == b.corr);
            }
}

TEST_CASE("models: predict equals the composed components to rounding, double") {
    // The evaluation strategy (tables, shared evaluations, fast paths) may change only the
    // last bits: well-conditioned specs agree with the public components composed by hand
    // to 1e-12 (the gradient correlation, a ratio of differences, to 1e-11).
    for (auto arch : {architecture::encoder, architecture::decoder})
        for (auto norm : {norm_placement::pre, norm_placement::post})
            for (int d : {64, 1024}) {
                CAPTURE(int(arch));
                CAPTURE(int(norm));
                CAPTURE(d);
                auto s = small_spec<double>(arch, norm, activation::gelu);
                s.d_model = d;
                s.d_ff = 3 * d / 2;
                if (norm == norm_placement::post) s.input.mean = 0;
                compare_with_composition(s, gelu<double>{}, 1e-12);
                s.act = activation::relu;
                s.lambda = s.beta = 1;  // the weight-1 fast path of the residual sums
                compare_with_composition(s, relu<double>{}, 1e-12);
            }
}
