#pragma once
// What the sigprop tool evaluates: a transformer_spec plus the name of the initialisation
// scheme that fills its sigmas (and lambda, beta), with the scheme's own knobs. Presets,
// --config files and command-line options all edit one model_config; build() turns it into
// the spec predict() takes. Header-only so that the tests can build the same specs.
#include <optional>
#include <string>
#include <string_view>

#include "sigprop/models.hpp"

namespace sigprop::cli {

/// The schemes the tool knows, as spelt on the command line and in JSON. `custom` means
/// "use the spec's sigmas, lambda and beta as given" (what `--json` and `init` write).
inline constexpr std::string_view scheme_names[] = {"bert",     "xavier", "xavier-fan-in", "gpt2",
                                                    "deepnorm", "tfixup", "dslm",          "custom"};

inline constexpr int max_layers = 100000;
inline constexpr double max_causal_work = 1e9;
/// dslm_resolved costs about 0.1 us per token pair and layer (measured: 1.2 s for 12
/// layers at L = 1024, docs/theory/models.md section 4): this keeps the solve to about 10 s.
inline constexpr double max_resolved_work = 1e8;

struct model_config {
    transformer_spec<double> spec{};
    std::string scheme{"bert"};
    double sigma{0.02};  ///< bert, gpt2: the standard deviation of every matrix
    double dslm_k{1};    ///< dslm: beta^2 = k / layers
    /// dslm: solve the sigmas on the position-resolved forward (dslm_forward::resolved,
    /// O(layers L^2)) instead of predict()'s pooled one.
    bool dslm_resolved{false};
    /// A LayerNorm right after the embedding (BERT), which the spec has no field for: build()
    /// turns the embedding into input moments, LayerNorm then embedding dropout.
    bool embedding_norm{false};
    /// Residual weights that replace the scheme's (after it has run); the decoder pair is
    /// the second stack's of an encoder-decoder (DeepNorm uses its own).
    std::optional<double> lambda{}, beta{}, decoder_lambda{}, decoder_beta{};
};

inline bool known_scheme(std::string_view name) {
    for (auto s : scheme_names)
        if (s == name) return true;
    return false;
}

/// The moments entering the first layer: the embedding's (with the embedding LayerNorm
/// when there is one), then embedding dropout; or the given input moments.
inline signal<double> input_of(const model_config& c) {
    const auto& s = c.spec;
    if (!s.embed) return s.input;
    signal<double> e = forward(*s.embed);
    if (c.embedding_norm) {
        sigprop::detail::require_size(sigprop::detail::spec_name, "d_model", s.d_model, 4);
        e = forward(layer_norm<double>{s.d_model}, e);
    }
    return forward(dropout<double>{s.p_embedding}, e);
}

/// The spec with the scheme applied. Throws sigprop::invalid_argument (from the library or
/// here) for anything predict() cannot evaluate, so callers can report one line.
inline transformer_spec<double> build(const model_config& c) {
    transformer_spec<double> s = c.spec;
    // Before the scheme: behind a LayerNorm the tables' scale is irrelevant, so a scheme's
    // embedding rule (DSLM, T-Fixup) rightly has nothing to act on.
    if (c.embedding_norm && s.embed) {
        s.input = input_of(c);
        s.embed.reset();
    }
    const std::string& n = c.scheme;
    // predict is O(layers) in time and memory; past this the tool would only be slow.
    if (s.layers > max_layers) sigprop::detail::fail(sigprop::detail::spec_name, "layers", s.layers, "[1, 100000]");
    // A causal block costs O(seq_len) (~1e8 token-layers a second): keep a run to seconds.
    if (s.arch != architecture::encoder && double(s.layers) * double(s.seq_len) > max_causal_work)
        sigprop::detail::fail(sigprop::detail::spec_name, "layers * seq_len", double(s.layers) * double(s.seq_len),
                              "[2, 1e9] for causal attention (its cost grows with both)");
    if (n == "bert") apply_bert(s, c.sigma);
    else if (n == "xavier") apply_xavier(s, xavier_rule::fan_avg);
    else if (n == "xavier-fan-in") apply_xavier(s, xavier_rule::fan_in);
    else if (n == "gpt2") apply_gpt2(s, c.sigma);
    else if (n == "deepnorm") apply_deepnorm(s);
    else if (n == "tfixup") apply_tfixup(s);
    else if (n == "dslm") {
        if (c.dslm_resolved && double(s.layers) * double(s.seq_len) * double(s.seq_len) > max_resolved_work)
            sigprop::detail::fail(sigprop::detail::spec_name, "layers * seq_len^2",
                                  double(s.layers) * double(s.seq_len) * double(s.seq_len),
                                  "[1, 1e8] for dslm_resolved (the position-resolved solve's cost grows with both)");
        apply_dslm(s, dslm_options<double>{c.dslm_k, dslm_depth::layers,
                                           c.dslm_resolved ? dslm_forward::resolved : dslm_forward::pooled});
    }
    else if (n != "custom") throw invalid_argument("unknown scheme '" + n + "'");
    if (c.lambda) s.lambda = *c.lambda;
    if (c.beta) s.beta = *c.beta;
    if (c.decoder_lambda) s.decoder_lambda = *c.decoder_lambda;
    if (c.decoder_beta) s.decoder_beta = *c.decoder_beta;
    validate(s);
    return s;
}

}  // namespace sigprop::cli
