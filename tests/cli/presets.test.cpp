// The sigprop tool's presets against their published sources, built independently here:
// dimensions and scheme constants are written out from the papers and configs (not read
// from the preset), the spec is assembled by hand, and predict() must give the same
// trajectory. Also the tool's diagnostics and model_config rules.
#include <cmath>
#include <string>

#include <doctest/doctest.h>

#include "cli/diagnostics.hpp"
#include "cli/presets.hpp"

using namespace sigprop;
using sigprop::cli::build;
using sigprop::cli::find_preset;

namespace {

/// sum p_k^2 for p_k proportional to 1/k over V tokens, by brute force.
double zipf_same_row(int V) {
    double h1 = 0, h2 = 0;
    for (int k = V; k >= 1; --k) {  // small terms first
        h1 += 1.0 / k;
        h2 += 1.0 / (double(k) * k);
    }
    return h2 / (h1 * h1);
}

/// What every preset shares: dims, norm, activation, architecture, dropout.
struct source {
    const char* name;
    int layers, d, heads, d_ff, L, vocab;
    norm_placement norm;
    bool final_norm;
    activation act;
    architecture arch;
    double p_hidden, p_attention;
};

// Devlin et al. 2019 (BERT), Radford et al. 2019 + Hugging Face configs (GPT-2), Raffel et
// al. 2020 (T5), Dosovitskiy et al. 2021 (ViT-B/16: 224/16 = 14, 14^2 + 1 tokens).
const source sources[] = {
    {"bert-base", 12, 768, 12, 3072, 512, 30522, norm_placement::post, false, activation::gelu,
     architecture::encoder, 0.1, 0.1},
    {"bert-large", 24, 1024, 16, 4096, 512, 30522, norm_placement::post, false, activation::gelu,
     architecture::encoder, 0.1, 0.1},
    {"gpt2-small", 12, 768, 12, 3072, 1024, 50257, norm_placement::pre, true, activation::gelu,
     architecture::decoder, 0.1, 0.1},
    {"gpt2-medium", 24, 1024, 16, 4096, 1024, 50257, norm_placement::pre, true, activation::gelu,
     architecture::decoder, 0.1, 0.1},
    {"t5-base", 12, 768, 12, 3072, 512, 32128, norm_placement::pre, true, activation::relu,
     architecture::encoder_decoder, 0.1, 0.1},
    {"vit-base", 12, 768, 12, 3072, 14 * 14 + 1, 0, norm_placement::pre, true, activation::gelu,
     architecture::encoder, 0.1, 0.0},
};

transformer_spec<double> skeleton(const source& src) {
    transformer_spec<double> s;
    s.layers = src.layers;
    s.d_model = src.d;
    s.heads = src.heads;
    s.d_ff = src.d_ff;
    s.seq_len = src.L;
    s.norm = src.norm;
    s.final_norm = src.final_norm;
    s.act = src.act;
    s.arch = src.arch;
    s.p_hidden = src.p_hidden;
    s.p_attention = src.p_attention;
    return s;
}

/// The weights of each source, written out.
transformer_spec<double> by_hand(const source& src) {
    auto s = skeleton(src);
    const std::string n = src.name;
    const double d = src.d, f = src.d_ff;
    const int stacks = src.arch == architecture::encoder_decoder ? 2 : 1;
    layer_sigmas<double> w;
    if (n.rfind("bert", 0) == 0) {
        // initializer_range 0.02 everywhere; inputs: word/position/segment tables, the
        // embedding LayerNorm, embedding dropout 0.1.
        w = {0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02};
        const double q = (zipf_same_row(src.vocab) + 0.0 + 0.5) / 3;  // equal sigmas: plain mean
        const signal<double> emb{0, 3 * 0.02 * 0.02, q};
        s.input = forward(dropout<double>{0.1}, forward(layer_norm<double>{src.d}, emb));
    } else if (n.rfind("gpt2", 0) == 0) {
        // 0.02, and c_proj (o, ffn2) 0.02 / sqrt(2 n_layer); wte 0.02, wpe 0.01.
        const double proj = 0.02 / std::sqrt(2.0 * src.layers);
        w = {0.02, 0.02, 0.02, proj, 0.02, proj, 0.02, 0.02, 0.02, 0.02};
        s.p_embedding = 0.1;
        s.embed = embedding<double>{{{0.02, zipf_same_row(src.vocab)}, {0.01, 0.0}}};
    } else if (n == "t5-base") {
        // Mesh TF: N(0, 1/fan_in) (q's extra 1/sqrt(d_kv) replaces the score scaling).
        const double a = 1 / std::sqrt(d);
        w = {a, a, a, a, a, 1 / std::sqrt(f), a, a, a, a};
        s.p_embedding = 0.1;
        s.embed = embedding<double>{{{1.0, zipf_same_row(src.vocab)}}};
    } else {
        // ViT: Xavier-uniform kernels, variance 2 / (fan_in + fan_out); assumed input.
        const double a = std::sqrt(2 / (d + d)), g = std::sqrt(2 / (d + f));
        w = {a, a, a, a, g, g, a, a, a, a};
        s.input = {0, 1, 0.2};
    }
    s.sigmas.assign(std::size_t(stacks * src.layers), w);
    return s;
}

void check_same(const trajectory<double>& a, const trajectory<double>& b) {
    REQUIRE(a.points.size() == b.points.size());
    for (std::size_t i = 0; i < a.points.size(); ++i) {
        CHECK(a.points[i].x.var == doctest::Approx(b.points[i].x.var).epsilon(1e-12));
        CHECK(a.points[i].x.corr == doctest::Approx(b.points[i].x.corr).epsilon(1e-12));
        CHECK(a.points[i].g.var == doctest::Approx(b.points[i].g.var).epsilon(1e-12));
        CHECK(a.points[i].g.corr == doctest::Approx(b.points[i].g.corr).epsilon(1e-12));
    }
    REQUIRE(a.weight_grads.size() == b.weight_grads.size());
    for (std::size_t l = 0; l < a.weight_grads.size(); ++l)
        CHECK(a.weight_grads[l].ffn1 == doctest::Approx(b.weight_grads[l].ffn1).epsilon(1e-12));
}

}  // namespace

TEST_CASE("cli presets: dimensions, init and prediction match the published sources") {
    for (const auto& src : sources) {
        CAPTURE(std::string(src.name));
        const auto* p = find_preset(src.name);
        REQUIRE(p != nullptr);
        CHECK(p->vocab == src.vocab);
        const auto s = build(p->make());
        const auto want = by_hand(src);
        CHECK(s.layers == want.layers);
        CHECK(s.d_model == want.d_model);
        CHECK(s.heads == want.heads);
        CHECK(s.d_ff == want.d_ff);
        CHECK(s.seq_len == want.seq_len);
        CHECK(s.norm == want.norm);
        CHECK(s.final_norm == want.final_norm);
        CHECK(s.act == want.act);
        CHECK(s.arch == want.arch);
        CHECK(s.p_hidden == want.p_hidden);
        CHECK(s.p_attention == want.p_attention);
        CHECK(s.lambda == 1.0);
        CHECK(s.beta == 1.0);
        REQUIRE(s.sigmas.size() == want.sigmas.size());
        CHECK(s.sigmas.front().q == doctest::Approx(want.sigmas.front().q).epsilon(1e-15));
        CHECK(s.sigmas.back().o == doctest::Approx(want.sigmas.back().o).epsilon(1e-15));
        CHECK(s.sigmas.back().ffn2 == doctest::Approx(want.sigmas.back().ffn2).epsilon(1e-15));
        check_same(predict(s), predict(want));
    }
}

TEST_CASE("cli presets: unknown names and every listed preset") {
    CHECK(find_preset("bert-huge") == nullptr);
    for (const auto& p : cli::presets) CHECK(find_preset(p.name) == &p);
}

TEST_CASE("cli model_config: schemes, overrides and custom sigmas") {
    auto c = find_preset("bert-base")->make();
    c.scheme = "dslm";
    auto s = build(c);
    CHECK(s.lambda * s.lambda + s.beta * s.beta == doctest::Approx(1.0));
    CHECK(s.beta * s.beta == doctest::Approx(1.0 / 12));
    c.beta = 0.5;  // an explicit residual weight replaces the scheme's
    CHECK(build(c).beta == 0.5);
    c = find_preset("gpt2-small")->make();
    c.scheme = "deepnorm";
    s = build(c);
    CHECK(s.norm == norm_placement::post);
    CHECK(s.lambda == doctest::Approx(std::pow(2.0 * 12, 0.25)));  // decoder-only alpha (2M)^(1/4)
    // custom: the sigmas as given, and their count checked.
    c.scheme = "custom";
    c.spec.sigmas.assign(3, layer_sigmas<double>{});
    CHECK_THROWS_AS(build(c), sigprop::invalid_argument);
    c.spec.sigmas.assign(12, layer_sigmas<double>{0.1, 0.1, 0.1, 0.1, 0.1, 0.1});
    CHECK(build(c).sigmas[5].ffn1 == 0.1);
    c.spec.layers = cli::max_layers + 1;
    CHECK_THROWS_AS(build(c), sigprop::invalid_argument);
}

TEST_CASE("cli model_config: dslm_resolved solves DSLM on the resolved forward, within a cost limit") {
    auto c = find_preset("gpt2-small")->make();
    c.scheme = "dslm";
    c.spec.layers = 2;
    c.spec.seq_len = 16;
    const auto pooled = build(c);
    c.dslm_resolved = true;
    const auto s = build(c);
    auto direct = c.spec;
    apply_dslm(direct, dslm_options<double>{1.0, dslm_depth::layers, dslm_forward::resolved});
    CHECK(s.sigmas[1].v == direct.sigmas[1].v);
    CHECK(s.sigmas[1].v != pooled.sigmas[1].v);
    c.spec.layers = 12;
    c.spec.seq_len = 4096;  // 12 * 4096^2 > 1e8 token pairs times layers
    CHECK_THROWS_AS(build(c), sigprop::invalid_argument);
}

TEST_CASE("cli diagnostics: thresholds and what they find") {
    CHECK(cli::saturation_threshold(512) == doctest::Approx(2 * std::log(512.0)));
    // Post-LN with Xavier and no dropout: the tokens collapse; find the first layer past
    // 0.99 straight from the trajectory.
    auto c = cli::detail::deep_bert_large();
    c.spec.layers = 24;
    c.spec.p_hidden = c.spec.p_attention = c.spec.p_embedding = 0;
    c.spec.norm = norm_placement::post;
    c.scheme = "xavier";
    const auto s = build(c);
    const auto tr = predict(s);
    const auto d = cli::diagnose(s, tr);
    int first = -1;
    for (const auto& p : tr.points)
        if (p.kind == boundary_kind::ffn && p.x.corr > 0.99) { first = p.layer; break; }
    REQUIRE(first >= 0);
    CHECK(d.collapse_layer == first);
    CHECK(d.grad_growth == doctest::Approx(tr.points.front().g.var / tr.points.back().g.var));
    // The score variance of layer 1 by hand: Post-LN feeds the stream (mean 0) itself.
    const auto& x0 = tr.points.front().x;
    const double a = s.d_model * x0.var * s.sigmas[0].q * s.sigmas[0].k;
    CHECK(d.rows[0].score_var == doctest::Approx(a * a * (1 - x0.corr)));
    CHECK(d.overflow_layer == -1);
}
