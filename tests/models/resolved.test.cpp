// predict_forward_resolved (models/resolved.hpp): the position-resolved forward state.
// Exact reductions to predict() where the state stays equicorrelated, and agreement with
// the whole-model Monte-Carlo of a causal stack, where predict()'s pooled state does not.
#include <cmath>

#include <doctest/doctest.h>

#include "sigprop/models/resolved.hpp"
#include "support/agreement.hpp"
#include "support/model_specs.hpp"

using namespace sigprop;

namespace {

transformer_spec<double> small_spec(norm_placement norm, architecture arch) {
    return test::xavier_model(3, 32, 64, 2, 16, norm, arch);
}

}  // namespace

TEST_CASE("predict_forward_resolved equals predict when the scores vanish and nothing is masked") {
    // Bidirectional attention with sigma_q = sigma_k = 0 averages all L tokens: an
    // equicorrelated stream stays equicorrelated, so the resolved state reduces to predict's.
    for (auto norm : {norm_placement::pre, norm_placement::post}) {
        auto s = small_spec(norm, architecture::encoder);
        for (auto& w : s.sigmas) w.q = w.k = 0;
        s.p_hidden = 0.1;
        s.p_attention = 0.2;
        s.lambda = 0.9;
        s.beta = 0.6;
        s.final_norm = true;
        s.input = {0, 1.7, 0.3};
        const auto r = predict_forward_resolved(s);
        const auto p = predict(s);
        REQUIRE(r.size() == p.points.size());
        for (std::size_t i = 0; i < r.size(); ++i) {
            INFO("boundary " << i);
            CHECK(r[i].var == doctest::Approx(p.points[i].x.var).epsilon(1e-12));
            CHECK(r[i].corr == doctest::Approx(p.points[i].x.corr).epsilon(1e-12));
        }
    }
}

TEST_CASE("predict_forward_resolved: first causal block equals the pooled causal formula at zero scores") {
    // An equicorrelated input makes the first block's pooled causal forward exact
    // (multi_head_attention.hpp: var r (1 + k H_L/L) + (1-r) H_L/((1-p) L), cov r + (1-r)/max(i, j)).
    auto s = small_spec(norm_placement::pre, architecture::decoder);
    for (auto& w : s.sigmas) w.q = w.k = 0;
    s.p_attention = 0.2;
    s.input = {0, 1.0, 0.4};
    const auto r = predict_forward_resolved(s);
    const auto p = predict(s);
    CHECK(r[1].var == doctest::Approx(p.points[1].x.var).epsilon(1e-12));
    CHECK(r[1].corr == doctest::Approx(p.points[1].x.corr).epsilon(1e-12));
}

TEST_CASE("predict_forward_resolved agrees with the Monte-Carlo of a causal Pre-LN stack") {
    // Xavier init (score variance ~1): short causal rows and position-dependent pair
    // correlations. Every boundary's variance and correlation within 5 standard errors
    // (measured: at most 2.7; predict()'s pooled state misses boundaries 5 and 6 by 5.3 and
    // 5.4 standard errors in this run).
    const auto s = small_spec(norm_placement::pre, architecture::decoder);
    const auto m = validation::measure_model(s, test::mc_options(256, 2, 5));
    const auto r = predict_forward_resolved(s);
    REQUIRE(r.size() == m.forward.size());
    for (std::size_t i = 0; i < r.size(); ++i) {
        INFO("boundary " << i);
        test::check_agrees("x var", r[i].var, m.forward[i].var);
        test::check_agrees("x corr", r[i].corr, m.forward[i].corr);
    }
}

TEST_CASE("predict_forward_resolved rejects what it does not model") {
    auto s = small_spec(norm_placement::pre, architecture::decoder);
    s.input.mean = 0.5;
    CHECK_THROWS_AS(predict_forward_resolved(s), sigprop::invalid_argument);
    auto e = small_spec(norm_placement::pre, architecture::encoder_decoder);
    e.sigmas.resize(6);
    apply_xavier(e);
    CHECK_THROWS_AS(predict_forward_resolved(e), sigprop::invalid_argument);
    auto b = small_spec(norm_placement::pre, architecture::decoder);
    b.seq_len = 1;
    CHECK_THROWS_AS(predict_forward_resolved(b), sigprop::invalid_argument);
}
