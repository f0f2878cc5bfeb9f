// Property sweep over the combinators and whole models: random valid blocks and specs
// (depths to 1e4, widths to 1e6, sequence lengths to 1e6, dropout to 0.999, residual
// weights over twelve decades) keep every invariant at every boundary, and an overflow
// is reported by trajectory::overflow_layer. Shares of SIGPROP_SWEEP_POINTS as in
// components_sweep.test.cpp; deep models cost O(depth), so they get few points.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "reliability/checks.hpp"
#include "reliability/sampling.hpp"
#include "sigprop/sigprop.hpp"

namespace {

using namespace sigprop;
using reliability::sampler;
using reliability::show;

void require(const reliability::tally& t) {
    INFO("first failure: " << t.first);
    CHECK(t.points > 0);
    CHECK(t.failures == 0);
}

template <class C>
void one(reliability::tally& t, sampler& rng, const C& c, bool zero_mean) {
    signal<double> x = rng.any_signal(zero_mean);
    x.var = std::max(x.var, 1e-12);  // blocks that start with a LayerNorm need x.var > 0
    const gradient<double> g = rng.any_gradient();
    const signal<double> y = forward(c, x);
    const gradient<double> d = backward(c, x, g);
    t.record_lazy(reliability::good(y) && reliability::good(d),
                  [&] { return "x " + show(x) + " g " + show(g) + " -> " + show(y) + " " + show(d); });
}

double weight(sampler& r) { return r.chance(0.2) ? 1.0 : r.log_uniform(-6, 6); }

transformer_spec<double> any_spec(sampler& r, int max_layers) {
    transformer_spec<double> s;
    s.arch = static_cast<architecture>(int(r.uniform(0, 3)));
    s.layers = r.log_int(max_layers);
    s.heads = r.log_int(16);
    s.d_model = s.heads * std::max(4, r.log_int(1e6 / s.heads));
    s.d_ff = r.log_int(1e6);
    // Causal stacks cost O(layers * seq_len): keep that product under 1e6.
    const double max_L = s.arch == architecture::encoder ? 1e6 : std::max(2.0, 1e6 / s.layers);
    s.seq_len = std::max(2, r.log_int(max_L));
    if (s.arch == architecture::encoder_decoder && r.chance(0.5)) s.source_len = std::max(2, r.log_int(max_L));
    s.norm = r.chance(0.5) ? norm_placement::pre : norm_placement::post;
    s.final_norm = r.chance(0.5);
    s.act = r.chance(0.5) ? activation::relu : activation::gelu;
    s.p_hidden = r.drop();
    s.p_attention = r.drop();
    s.p_embedding = r.drop();
    s.lambda = weight(r);
    s.beta = r.chance(0.05) ? 0.0 : weight(r);
    const int n = s.arch == architecture::encoder_decoder ? 2 * s.layers : s.layers;
    const double sigma = r.sigma();
    for (int i = 0; i < n; ++i) {
        layer_sigmas<double> w;
        for (double* v : {&w.q, &w.k, &w.v, &w.o, &w.ffn1, &w.ffn2, &w.cross_q, &w.cross_k, &w.cross_v, &w.cross_o})
            *v = r.chance(0.9) ? sigma : r.sigma();
        s.sigmas.push_back(w);
    }
    if (r.chance(0.5)) {
        embedding<double> e;
        e.tables.push_back({std::max(1e-6, r.sigma()), std::abs(r.corr())});
        if (r.chance(0.5)) e.tables.push_back({r.sigma(), std::abs(r.corr())});
        s.embed = e;
    } else {
        s.input = {r.mean(), r.log_uniform(-12, 12), r.corr()};
    }
    s.output_gradient = {r.log_uniform(-12, 12), r.corr()};
    return s;
}

bool good(const trajectory<double>& tr, std::string& why) {
    bool any_inf = false;
    for (const auto& p : tr.points) {
        if (!reliability::good(p.x) || !reliability::good(p.g)) {
            why = "layer " + std::to_string(p.layer) + " x " + show(p.x) + " g " + show(p.g);
            return false;
        }
        any_inf = any_inf || std::isinf(p.x.var) || std::isinf(p.g.var);
    }
    for (const auto& w : tr.weight_grads)
        for (double v : {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2, w.cross_q, w.cross_k, w.cross_v, w.cross_o}) {
            if (!reliability::good_var(v)) {
                why = "weight gradient " + std::to_string(v);
                return false;
            }
            any_inf = any_inf || std::isinf(v);
        }
    if (any_inf != (tr.overflow_layer >= 0)) {
        why = "overflow_layer " + std::to_string(tr.overflow_layer);
        return false;
    }
    return true;
}

}  // namespace

TEST_CASE("reliability: combinators keep the invariants") {
    SUBCASE("pre-LN FFN residual") {
        sampler r(31);
        reliability::tally t;
        for (long long i = 0; i < reliability::points(0.04); ++i) {
            const int d = std::max(2, r.log_int(1e6));
            one(t, r,
                residual(serial(layer_norm<double>{d}, linear<double>{d, r.log_int(1e6), r.sigma()}, gelu<double>{},
                                linear<double>{r.log_int(1e6), d, r.sigma()}, dropout<double>{r.drop()}),
                         weight(r), weight(r)),
                false);
        }
        require(t);
    }
    SUBCASE("deep repeat of post-LN relu blocks, depth to 1e4") {
        sampler r(32);
        reliability::tally t;
        for (long long i = 0; i < reliability::points(0.002); ++i) {
            const int d = std::max(2, r.log_int(1e6));
            const auto block = serial(
                residual(serial(linear<double>{d, d, r.sigma()}, relu<double>{}), weight(r), weight(r)),
                layer_norm<double>{d});
            one(t, r, repeat(r.log_int(1e4), block), false);
        }
        require(t);
    }
}

// Includes streams whose variance underflows (lambda < 1 with a silent branch, defect 7 of
// docs/RELIABILITY.md): the residual keeps them positive, so the next LayerNorm accepts them.
TEST_CASE("reliability: deep pre-LN attention stacks keep the invariants") {
    sampler r(33);
    reliability::tally t;
    for (long long i = 0; i < reliability::points(0.002); ++i) {
        const int heads = r.log_int(16), d = heads * std::max(2, r.log_int(1e4));
        const multi_head_attention<double> m{d, heads, std::max(2, r.log_int(1e6)), r.sigma(), r.sigma(),
                                             r.sigma(), r.sigma(), r.drop(), false};
        one(t, r, repeat(r.log_int(1e4), residual(serial(layer_norm<double>{d}, m), weight(r), weight(r))), true);
    }
    require(t);
}

// Defect 6 of docs/RELIABILITY.md (NaN past an overflowed attention output, negative
// value-path gradient variances) was found here.
TEST_CASE("reliability: predict keeps the invariants and reports overflow") {
    // Depth to 1e4 in a few models, to 100 in most: predict is O(layers).
    for (auto [share, max_layers, seed] : {std::tuple{0.004, 100, 41}, std::tuple{0.0002, 10000, 42}}) {
        sampler r(seed);
        reliability::tally t;
        for (long long i = 0; i < reliability::points(share); ++i) {
            const transformer_spec<double> s = any_spec(r, max_layers);
            std::string why;
            const bool ok = good(predict(s), why);
            t.record_lazy(ok, [&] {
                return why + " (layers " + std::to_string(s.layers) + ", d " + std::to_string(s.d_model) + ", L " +
                       std::to_string(s.seq_len) + ", arch " + std::to_string(int(s.arch)) + ")";
            });
        }
        require(t);
    }
}
