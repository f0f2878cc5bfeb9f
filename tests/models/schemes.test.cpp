// Schemes against their published formulas, DSLM at depth, and the init solver checked
// through predict.
#include <cmath>
#include <functional>
#include <string>

#include <doctest/doctest.h>

#include "sigprop/models.hpp"

using namespace sigprop;

namespace {
template <class T>
transformer_spec<T> base(architecture arch, int layers = 6) {
    transformer_spec<T> s;
    s.layers = layers;
    s.d_model = 256;
    s.d_ff = 1024;
    s.heads = 4;
    s.seq_len = 128;
    s.arch = arch;
    return s;
}

std::string message_of(auto&& f) {
    try {
        f();
    } catch (const sigprop::invalid_argument& e) {
        return e.what();
    }
    return {};
}
}  // namespace

TEST_CASE_TEMPLATE("schemes: bert, xavier and gpt2 follow their formulas", T, float, double, long double) {
    auto s = base<T>(architecture::encoder_decoder);
    apply_bert(s);
    REQUIRE(s.sigmas.size() == 12u);
    CHECK(s.sigmas[7].cross_v == T(0.02));
    CHECK(s.lambda == T(1));
    apply_xavier(s);
    CHECK(double(s.sigmas[0].q) == doctest::Approx(1 / 16.0));
    CHECK(double(s.sigmas[0].ffn1) == doctest::Approx(std::sqrt(2.0 / 1280)));
    CHECK(double(s.sigmas[0].ffn2) == doctest::Approx(std::sqrt(2.0 / 1280)));
    apply_xavier(s, xavier_rule::fan_in);
    CHECK(double(s.sigmas[3].ffn1) == doctest::Approx(1 / 16.0));
    CHECK(double(s.sigmas[3].ffn2) == doctest::Approx(1 / 32.0));
    apply_gpt2(s);
    CHECK(double(s.sigmas[2].o) == doctest::Approx(0.02 / std::sqrt(12.0)));
    CHECK(double(s.sigmas[2].ffn2) == doctest::Approx(0.02 / std::sqrt(12.0)));
    CHECK(double(s.sigmas[2].q) == doctest::Approx(0.02));
}

TEST_CASE("schemes: DeepNorm constants and mapping as in the DeepNet paper") {
    const auto e = deepnorm<double>(architecture::encoder, 18, 18);
    CHECK(e.encoder_alpha == doctest::Approx(std::pow(36.0, 0.25)));
    CHECK(e.encoder_beta == doctest::Approx(std::pow(144.0, -0.25)));
    const auto d = deepnorm<double>(architecture::decoder, 1, 24);
    CHECK(d.decoder_alpha == doctest::Approx(std::pow(48.0, 0.25)));
    CHECK(d.decoder_beta == doctest::Approx(std::pow(192.0, -0.25)));
    const auto ed = deepnorm<double>(architecture::encoder_decoder, 12, 6);
    CHECK(ed.encoder_alpha == doctest::Approx(0.81 * std::pow(std::pow(12.0, 4) * 6, 1.0 / 16)));
    CHECK(ed.encoder_beta == doctest::Approx(0.87 * std::pow(std::pow(12.0, 4) * 6, -1.0 / 16)));
    CHECK(ed.decoder_alpha == doctest::Approx(std::pow(18.0, 0.25)));
    CHECK(ed.decoder_beta == doctest::Approx(std::pow(72.0, -0.25)));

    auto s = base<double>(architecture::encoder_decoder, 12);
    apply_deepnorm(s);
    const auto c = deepnorm<double>(architecture::encoder_decoder, 12, 12);
    CHECK(s.norm == norm_placement::post);
    CHECK(s.lambda == doctest::Approx(c.encoder_alpha));
    CHECK(s.beta == 1.0);
    REQUIRE(s.decoder_lambda.has_value());
    CHECK(*s.decoder_lambda == doctest::Approx(c.decoder_alpha));
    CHECK(s.sigmas[0].q == doctest::Approx(1 / 16.0));  // xavier gain 1, d x d
    CHECK(s.sigmas[0].v == doctest::Approx(c.encoder_beta / 16.0));
    CHECK(s.sigmas[0].ffn1 == doctest::Approx(c.encoder_beta * std::sqrt(2.0 / 1280)));
    CHECK(s.sigmas[12].cross_o == doctest::Approx(c.decoder_beta / 16.0));
    const auto t = predict(s);
    CHECK(t.overflow_layer == -1);
}

TEST_CASE("schemes: T-Fixup scales v, o and the FFN by its depth factors") {
    auto s = base<double>(architecture::encoder_decoder, 16);
    s.embed = embedding<double>{{{1.0, 0.05}, {1.0, 0.0}}};
    apply_tfixup(s);
    const double enc = 0.67 * std::pow(16.0, -0.25), dec = std::pow(144.0, -0.25);
    CHECK(s.sigmas[0].v == doctest::Approx(enc / 16.0));
    CHECK(s.sigmas[0].q == doctest::Approx(1 / 16.0));
    CHECK(s.sigmas[0].ffn2 == doctest::Approx(enc * std::sqrt(2.0 / 1280)));
    CHECK(s.sigmas[16].o == doctest::Approx(dec / 16.0));
    CHECK(s.sigmas[16].cross_v == doctest::Approx(dec / 16.0));
    // Both stacks' input embeddings get (9N)^(-1/4) (the paper's step 2 and its code).
    CHECK(s.embed->tables[1].sigma == doctest::Approx(std::pow(256.0, -0.25) * dec));
    CHECK(s.norm == norm_placement::none);
    CHECK_FALSE(s.final_norm);
}

// What T-Fixup's N^(-1/4) factors are for: without LayerNorm, the 2N (3N) residual blocks
// together change the stream's variance and its gradient's variance by a factor that does
// not grow with depth, while Xavier without LayerNorm explodes.
TEST_CASE("schemes: T-Fixup without LayerNorm keeps the whole stack's gains depth-independent") {
    for (auto arch : {architecture::encoder, architecture::decoder, architecture::encoder_decoder}) {
        CAPTURE(int(arch));
        double fwd[3], bwd[3];
        const int depths[3] = {6, 96, 768};
        for (int i = 0; i < 3; ++i) {
            auto s = base<double>(arch, depths[i]);
            s.act = activation::relu;
            s.embed = embedding<double>{{{1.0, 0.1}}};
            apply_tfixup(s);
            const auto t = predict(s);
            REQUIRE(t.overflow_layer == -1);
            // The last stack's input and output (for an encoder-decoder, the decoder).
            std::size_t first = 0;
            for (std::size_t k = 0; k < t.points.size(); ++k)
                if (t.points[k].kind == boundary_kind::input) first = k;
            fwd[i] = t.points.back().x.var / t.points[first].x.var;
            bwd[i] = t.points[first].g.var / t.points.back().g.var;
            CAPTURE(depths[i]);
            CHECK(fwd[i] > 1.0);
            CHECK(fwd[i] < 1.25);
            CHECK(bwd[i] > 1.0);
            CHECK(bwd[i] < 1.25);
        }
        CHECK(fwd[2] == doctest::Approx(fwd[1]).epsilon(0.01));
        CHECK(bwd[2] == doctest::Approx(bwd[1]).epsilon(0.01));
        auto x = base<double>(arch, 24);
        x.act = activation::relu;
        apply_xavier(x);
        x.norm = norm_placement::none;
        const auto tx = predict(x);
        CHECK(tx.points.back().x.var / tx.points.front().x.var > 1e6);
    }    // Without LayerNorm the overflow reaches the activations: a GeLU of infinite variance
    // must give +inf, not NaN (this 2 + 2 layer Xavier model gave NaN everywhere before).
    // Its overflow came from attention's unbounded variance (docs/RELIABILITY.md, defect 8);
    // now bounded, the first FFN's output weights overflow the stream instead.
    auto x = base<double>(architecture::encoder_decoder, 2);
    x.d_model = 32;
    x.d_ff = 64;
    x.heads = 2;
    x.seq_len = 16;
    x.source_len = 12;
    x.act = activation::gelu;
    apply_xavier(x);
    x.norm = norm_placement::none;
    x.sigmas[0].ffn2 = 1e200;
    const auto t = predict(x);
    CHECK(t.overflow_layer >= 0);
    for (const auto& p : t.points) {
        CHECK_FALSE(std::isnan(p.x.var));
        CHECK_FALSE(std::isnan(p.x.corr));
        CHECK_FALSE(std::isnan(p.g.var));
        CHECK_FALSE(std::isnan(p.g.corr));
    }
    for (const auto& w : t.weight_grads)
        for (double v : {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2, w.cross_q, w.cross_k, w.cross_v, w.cross_o})
            CHECK_FALSE(std::isnan(v));
}

TEST_CASE("schemes: DSLM residual weights, its constraint and k") {
    auto s = base<double>(architecture::encoder, 192);
    apply_dslm(s);
    CHECK(s.beta * s.beta == doctest::Approx(1.0 / 192));
    CHECK(s.lambda * s.lambda + s.beta * s.beta == doctest::Approx(1.0));
    CHECK_NOTHROW(check_dslm(s));
    CHECK(dslm_beta2(s, dslm_options<double>{2.0, dslm_depth::blocks}) == doctest::Approx(2.0 / 384));
    s.lambda = 1;
    CHECK(message_of([&] { check_dslm(s); }).find("lambda^2 + beta^2 = 1.0052") != std::string::npos);
    CHECK(message_of([&] { dslm_beta2(s, dslm_options<double>{0.0}); }).find("sigprop::dslm: k = 0") == 0);
    CHECK(message_of([&] { dslm_beta2(s, dslm_options<double>{500.0}); }).find("k = 500") != std::string::npos);
}

TEST_CASE("schemes: DSLM FFN and attention sigmas against the paper's closed forms") {
    auto s = base<double>(architecture::encoder, 4);
    s.act = activation::relu;
    s.seq_len = 4096;
    s.p_hidden = 0.1;
    s.p_embedding = 0.1;
    s.embed = embedding<double>{{{1.0, 0.3}, {1.0, 0.2}}};
    apply_dslm(s);
    // Embedding tables N(0, (1 - p)/T).
    CHECK(s.embed->tables[0].sigma == doctest::Approx(std::sqrt(0.9 / 2)));
    const auto t = predict(s);
    for (int l = 0; l < 4; ++l) {
        CAPTURE(l);
        // ReLU FFN: exactly the paper's sqrt(2 (1-p)/(d d_ff)) (ReLU is homogeneous).
        CHECK(s.sigmas[std::size_t(l)].ffn1 == doctest::Approx(dslm_paper_ffn_sigma(256, 1024, 0.1)).epsilon(1e-9));
        CHECK(s.sigmas[std::size_t(l)].ffn2 == s.sigmas[std::size_t(l)].ffn1);
        // Attention: the paper's sqrt((1-p)/r)/d assumes vanishing scores and L -> inf; with
        // L = 4096 and sigma_q = sigma_k = 1/sqrt(d) ours stays within a few percent.
        const double r = forward(layer_norm<double>{256}, t.points[std::size_t(2 * l)].x).corr;
        CHECK(s.sigmas[std::size_t(l)].v == doctest::Approx(dslm_paper_attention_sigma(256, r, 0.1)).epsilon(0.03));
    }
}

TEST_CASE("schemes: DSLM keeps the forward variance at 1 and the gradient near 1 at depth 192 and 768") {
    for (int n : {192, 768})
        for (auto act : {activation::relu, activation::gelu}) {
            CAPTURE(n);
            auto s = base<double>(architecture::encoder, n);
            s.d_model = 512;
            s.d_ff = 2048;
            s.heads = 8;
            s.act = act;
            s.p_hidden = 0.1;
            s.embed = embedding<double>{{{1.0, 0.22}}};
            apply_dslm(s);
            const auto t = predict(s);
            double gmin = 1e9, gmax = 0;
            for (const auto& p : t.points) {
                CHECK(p.x.var == doctest::Approx(1.0).epsilon(1e-6));
                gmin = std::min(gmin, p.g.var);
                gmax = std::max(gmax, p.g.var);
            }
            INFO("gradient variance range " << gmin << " .. " << gmax);
            // Not exactly 1: the attention branch's backward gain depends on the gradient's
            // token correlation (small here), which the DSLM init does not control; the
            // variance still stays within a factor 3 at any depth (see docs/theory/models.md).
            CHECK(gmin > 0.33);
            CHECK(gmax < 3.0);
            // The same model with Xavier init and the standard residual: the Pre-LN gradient
            // grows with depth.
            auto x = s;
            apply_xavier(x);
            const auto tx = predict(x);
            CHECK(tx.points.front().g.var / tx.points.back().g.var > 3.0 * gmax / gmin);
        }
}

TEST_CASE("schemes: the solver's branch variances come out of predict") {
    for (auto arch : {architecture::encoder, architecture::decoder, architecture::encoder_decoder})
        for (auto act : {activation::relu, activation::gelu}) {
            CAPTURE(int(arch));
            auto s = base<double>(arch, 5);
            s.act = act;
            s.p_hidden = 0.1;
            s.p_attention = 0.1;
            s.input = {0, 1, 0.2};
            apply_xavier(s);
            const double target = 2.5;
            const auto gains = solve_init(s, init_targets<double>{target});
            // Pre-LN, lambda = beta = 1: every block adds exactly the branch variance.
            const auto t = predict(s);
            for (std::size_t i = 1; i < t.points.size(); ++i) {
                if (t.points[i].kind == boundary_kind::input) continue;
                CAPTURE(i);
                CHECK(t.points[i].x.var - t.points[i - 1].x.var == doctest::Approx(target).epsilon(1e-9));
            }
            for (const auto& g : gains) {
                CHECK(g.ffn_forward == doctest::Approx(target).epsilon(1e-9));
                CHECK(g.attention_backward > 0);
            }
        }
    auto s = base<double>(architecture::encoder, 3);
    CHECK(message_of([&] { solve_init(s, init_targets<double>{-1.0}); }).find("targets.forward = -1") != std::string::npos);
}

TEST_CASE_TEMPLATE("schemes: DSLM and the solver in every scalar type", T, float, double, long double) {
    auto s = base<T>(architecture::decoder, 24);
    s.act = activation::gelu;
    s.p_hidden = T(0.1);
    s.embed = embedding<T>{{{T(1), T(0.1)}, {T(1), T(0)}}};
    apply_dslm(s);
    const auto t = predict(s);
    for (const auto& p : t.points) {
        CHECK(double(p.x.var) == doctest::Approx(1.0).epsilon(std::is_same_v<T, float> ? 1e-4 : 1e-9));
        CHECK(std::isfinite(double(p.g.var)));
    }
}

// The joint solve: unit forward variance per branch and a backward gain per branch, checked
// through predict. With Pre-LN (or no LN) and lambda^2 + beta^2 = 1 every block keeps the
// stream variance at 1 and multiplies the gradient variance by exactly
// lambda^2 + beta^2 * targets.backward.
TEST_CASE("schemes: the solver meets a forward and a backward target together") {
    struct cfg {
        architecture arch;
        norm_placement norm;
    };
    // No causal stack: with attention's variance bounded (defect 8), a causal attention
    // branch's gain at unit forward variance is at least 1.74 (decoder) or 1.30 (the
    // decoder of an encoder-decoder) in this model, above every gain a GeLU FFN reaches
    // here (1.02 - 1.09), so no common backward target exists; before, they were met only
    // where e^{2 sig} ~ 1e7 >> L.
    for (const cfg c : {cfg{architecture::encoder, norm_placement::pre}, cfg{architecture::encoder, norm_placement::none}}) {
        CAPTURE(int(c.arch));
        CAPTURE(int(c.norm));
        auto s = base<double>(c.arch, 4);
        s.d_model = 64;
        s.d_ff = 256;
        s.seq_len = 32;
        s.norm = c.norm;
        s.act = activation::gelu;  // a ReLU FFN's gain is fixed by its forward variance
        s.p_hidden = 0.1;
        apply_xavier(s);
        s.lambda = std::sqrt(7.0 / 8);
        s.beta = std::sqrt(1.0 / 8);
        // 1.05 was met only with e^{2 sig} ~ 1e7 >> L = 32, where attention's forward
        // variance was unbounded (defect 8); 1.07 is inside both branches' reachable ranges.
        const double target = 1.07;
        const auto gains = solve_init(s, init_targets<double>{1.0, target});
        for (const auto& g : gains) {
            CHECK(g.attention_backward == doctest::Approx(target).epsilon(1e-9));
            CHECK(g.ffn_backward == doctest::Approx(target).epsilon(1e-9));
        }
        const auto t = predict(s);
        const double factor = 7.0 / 8 + target / 8;
        for (std::size_t i = 0; i < t.points.size(); ++i) {
            CAPTURE(i);
            CHECK(t.points[i].x.var == doctest::Approx(1.0).epsilon(1e-9));
            if (t.points[i].kind == boundary_kind::input) continue;
            CHECK(t.points[i - 1].g.var / t.points[i].g.var == doctest::Approx(factor).epsilon(1e-9));
        }
    }
}

TEST_CASE("schemes: unreachable or invalid solver targets throw naming the field, value and rule") {
    auto s = base<double>(architecture::encoder, 3);
    s.d_model = 64;
    s.d_ff = 256;
    s.seq_len = 32;
    s.act = activation::relu;
    apply_xavier(s);
    // A ReLU FFN's gain is its forward variance times the LayerNorm's (d-2)/((d-3) s2): fixed.
    const std::string m = message_of([&] { solve_init(s, init_targets<double>{1.0, 1.05}); });
    CAPTURE(m);
    CHECK(m.find("sigprop::solve_init: targets.backward = 1.05 is outside the valid range [") == 0);
    CHECK(m.find("FFN branch gains reachable in layer 2") != std::string::npos);
    CHECK(message_of([&] { solve_init(s, init_targets<double>{1.0, -2.0}); }).find("targets.backward = -2") !=
          std::string::npos);
    CHECK(message_of([&] { solve_init(s, init_targets<double>{0.0, 1.0}); }).find("targets.forward = 0") !=
          std::string::npos);
}

// Every class of bad input to the model layer, in one table: the spec's shape, missing or
// mis-sized inputs, values outside an enum, and a scheme's own constraint. Each must throw
// sigprop::invalid_argument whose message names the entry point, the field, its value and
// the rule.
TEST_CASE("schemes: bad specs and scheme constraints throw naming the field, value and rule") {
    const auto good = [] {
        auto s = base<double>(architecture::encoder, 2);
        s.d_model = 64;
        s.d_ff = 128;
        apply_xavier(s);
        return s;
    }();
    auto encdec = good;
    encdec.arch = architecture::encoder_decoder;
    apply_xavier(encdec);
    struct row {
        const char* what;
        std::function<void()> call;
        const char* needle;
    };
    const row rows[] = {
        {"d_model not divisible", [&] { auto s = good; s.heads = 5; (void)predict(s); },
         "sigprop::transformer_spec: heads = 5 is outside the valid range {divisors of d_model = 64}"},
        {"zero layers", [&] { auto s = good; s.layers = 0; (void)predict(s); }, "transformer_spec: layers = 0"},
        {"zero layers in a scheme", [&] { auto s = good; s.layers = 0; apply_tfixup(s); }, "transformer_spec: layers = 0"},
        {"negative d_ff", [&] { auto s = good; s.d_ff = -4; (void)predict(s); }, "transformer_spec: d_ff = -4"},
        {"sigmas too short", [&] { auto s = good; s.sigmas.pop_back(); (void)predict(s); },
         "sigmas.size() = 1 is outside the valid range {2} (one entry per layer)"},
        {"encoder-decoder with one stack's sigmas", [&] { auto s = encdec; s.sigmas.resize(2); (void)predict(s); },
         "sigmas.size() = 2 is outside the valid range {4} (one entry per layer, 2 * layers for an encoder-decoder)"},
        {"encoder-decoder with a one-token source", [&] { auto s = encdec; s.source_len = 1; (void)predict(s); },
         "transformer_spec: source_len = 1"},
        {"a source without an encoder-decoder", [&] { auto s = good; s.source_len = 16; (void)predict(s); },
         "source_len = 16 is outside the valid range {0} (only an encoder-decoder has a source length)"},
        {"no input moments", [&] { auto s = good; s.input.var = 0; (void)predict(s); }, "input.var = 0"},
        {"norm out of range", [&] { auto s = good; s.norm = static_cast<norm_placement>(7); (void)predict(s); },
         "norm = 7 is outside the valid range {pre = 0, post = 1, none = 2}"},
        {"arch out of range", [&] { auto s = good; s.arch = static_cast<architecture>(3); (void)predict(s); },
         "arch = 3 is outside the valid range {encoder = 0, decoder = 1, encoder_decoder = 2}"},
        {"act out of range", [&] { auto s = good; s.act = static_cast<activation>(2); (void)predict(s); },
         "act = 2 is outside the valid range {relu = 0, gelu = 1}"},
        {"DSLM constraint", [&] { auto s = good; apply_dslm(s); s.beta = 0.5; check_dslm(s); },
         "sigprop::dslm: lambda^2 + beta^2 = 0.75"},
        {"DSLM constraint, decoder stack", [&] { auto s = encdec; apply_dslm(s); s.decoder_lambda = 1.0; check_dslm(s); },
         "sigprop::dslm: decoder_lambda^2 + decoder_beta^2 = 1.5 is outside the valid range {1} (DSLM needs lambda^2 + beta^2 = 1)"},
        {"DSLM k", [&] { auto s = good; apply_dslm(s, dslm_options<double>{3.0}); },
         "sigprop::dslm: k = 3 is outside the valid range (0, N = 2]"},
        {"DeepNorm depth", [&] { (void)deepnorm<double>(architecture::encoder, 0, 1); }, "sigprop::deepnorm: N = 0"},
        {"paper attention sigma", [&] { (void)dslm_paper_attention_sigma(64, 1.5, 0.1); },
         "sigprop::dslm_paper_attention_sigma: r = 1.5 is outside the valid range (0, 1]"},
        {"paper FFN sigma", [&] { (void)dslm_paper_ffn_sigma(64, 256, 1.0); },
         "sigprop::dslm_paper_ffn_sigma: p = 1"},
        {"solver target", [&] { auto s = good; solve_init(s, init_targets<double>{1.0, 0.0}); },
         "sigprop::solve_init: targets.backward = 0"},
    };
    for (const auto& r : rows) {
        const std::string what = r.what;
        CAPTURE(what);
        const std::string msg = message_of(r.call);
        CAPTURE(msg);
        CHECK(msg.find(r.needle) != std::string::npos);
    }
}
