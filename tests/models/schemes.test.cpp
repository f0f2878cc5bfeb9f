// Schemes against their published formulas, DSLM at depth, and the init solver checked
// through predict.
#include <cmath>
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
    CHECK(s.embed->tables[1].sigma == doctest::Approx(std::pow(256.0, -0.25) * enc));
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
