#include "cli/options.hpp"

#include "cli/config.hpp"
#include "cli/presets.hpp"

namespace sigprop::cli {

namespace {

/// An option that stores into a std::optional (CLI11 2.1 binds plain values only).
template <class V>
CLI::Option* add_optional(CLI::App& app, const std::string& name, std::optional<V>& slot, const std::string& help) {
    return app.add_option_function<V>(name, [&slot](const V& v) { slot = v; }, help);
}

}  // namespace

bool model_options::any() const {
    return layers || d_model || d_ff || heads || seq_len || source_len || norm || act || arch || scheme ||
           final_norm || p_hidden || p_attention || p_embedding || dropout || sigma || dslm_k || dslm_resolved || lambda || beta ||
           decoder_lambda || decoder_beta || input_mean || input_var || input_corr || grad_var || grad_corr;
}

void add_model_options(CLI::App& app, model_options& o) {
    std::string names;
    for (const auto& p : presets) names += (names.empty() ? "" : ", ") + std::string(p.name);
    app.add_option("preset", o.preset, "a named model: " + names);
    app.add_option("--config", o.config, "a JSON model (docs/TOOL.md), applied after the preset");
    auto* g = app.add_option_group("model", "override any field of the model");
    add_optional(*g, "--layers", o.layers, "layers per stack (1..100000)");
    add_optional(*g, "--d-model", o.d_model, "model width d");
    add_optional(*g, "--d-ff", o.d_ff, "FFN width");
    add_optional(*g, "--heads", o.heads, "attention heads (must divide d)");
    add_optional(*g, "--seq-len", o.seq_len, "tokens L (decoder side of an encoder-decoder)");
    add_optional(*g, "--source-len", o.source_len, "encoder tokens of an encoder-decoder (0: seq-len)");
    add_optional(*g, "--norm", o.norm, "LayerNorm placement: pre, post or none (no LayerNorm, as T-Fixup)");
    add_optional(*g, "--final-norm", o.final_norm, "a LayerNorm after the last layer: true or false");
    add_optional(*g, "--act", o.act, "FFN activation: relu or gelu");
    add_optional(*g, "--arch", o.arch, "encoder, decoder (causal) or encoder-decoder");
    add_optional(*g, "--dropout", o.dropout, "set hidden, attention and embedding dropout at once");
    add_optional(*g, "--p-hidden", o.p_hidden, "dropout after each branch");
    add_optional(*g, "--p-attention", o.p_attention, "dropout on the attention probabilities");
    add_optional(*g, "--p-embedding", o.p_embedding, "dropout after the embedding");
    add_optional(*g, "--scheme", o.scheme, "bert, xavier, xavier-fan-in, gpt2, deepnorm, tfixup or dslm");
    add_optional(*g, "--sigma", o.sigma, "bert, gpt2: standard deviation of every matrix (default 0.02)");
    add_optional(*g, "--dslm-k", o.dslm_k, "dslm: beta^2 = k / layers (default 1)");
    add_optional(*g, "--dslm-resolved", o.dslm_resolved,
                 "dslm: true solves the sigmas on the position-resolved forward, which keeps a decoder's real "
                 "stream flat (O(layers L^2); default false: predict's pooled forward)");
    add_optional(*g, "--lambda", o.lambda, "residual weight of the stream, y = lambda x + beta F(x) (replaces the scheme's)");
    add_optional(*g, "--beta", o.beta, "residual weight of the branch (replaces the scheme's)");
    add_optional(*g, "--decoder-lambda", o.decoder_lambda, "encoder-decoder: the decoder stack's lambda");
    add_optional(*g, "--decoder-beta", o.decoder_beta, "encoder-decoder: the decoder stack's beta");
    add_optional(*g, "--input-mean", o.input_mean, "input moments (replace the embedding): mean");
    add_optional(*g, "--input-var", o.input_var, "input variance");
    add_optional(*g, "--input-corr", o.input_corr, "input token correlation");
    add_optional(*g, "--grad-var", o.grad_var, "variance of the gradient at the model's output (default 1)");
    add_optional(*g, "--grad-corr", o.grad_corr, "its token correlation (default 0)");
}

model_config resolve(const model_options& o) {
    model_config c;
    if (!o.preset.empty()) {
        const preset* p = find_preset(o.preset);
        if (!p) {
            std::string names;
            for (const auto& q : presets) names += (names.empty() ? "" : ", ") + std::string(q.name);
            throw usage_error("unknown preset '" + o.preset + "' (known: " + names + ")");
        }
        c = p->make();
    } else {
        c = detail::deep_bert_large();
    }
    if (!o.config.empty()) apply_config_file(o.config, c);
    auto& s = c.spec;
    if (o.layers) s.layers = *o.layers;
    if (o.d_model) s.d_model = *o.d_model;
    if (o.d_ff) s.d_ff = *o.d_ff;
    if (o.heads) s.heads = *o.heads;
    if (o.seq_len) s.seq_len = *o.seq_len;
    if (o.source_len) s.source_len = *o.source_len;
    if (o.norm) s.norm = parse_norm(*o.norm);
    if (o.final_norm) s.final_norm = *o.final_norm;
    if (o.act) s.act = parse_activation(*o.act);
    if (o.arch) s.arch = parse_architecture(*o.arch);
    if (o.dropout) s.p_hidden = s.p_attention = s.p_embedding = *o.dropout;
    if (o.p_hidden) s.p_hidden = *o.p_hidden;
    if (o.p_attention) s.p_attention = *o.p_attention;
    if (o.p_embedding) s.p_embedding = *o.p_embedding;
    if (o.scheme) {
        if (!known_scheme(*o.scheme) || *o.scheme == "custom")
            throw usage_error("unknown scheme '" + *o.scheme +
                              "' (bert, xavier, xavier-fan-in, gpt2, deepnorm, tfixup or dslm)");
        c.scheme = *o.scheme;
    }
    if (o.sigma) c.sigma = *o.sigma;
    if (o.dslm_k) c.dslm_k = *o.dslm_k;
    if (o.dslm_resolved) c.dslm_resolved = *o.dslm_resolved;
    if (o.lambda) c.lambda = *o.lambda;
    if (o.beta) c.beta = *o.beta;
    if (o.decoder_lambda) c.decoder_lambda = *o.decoder_lambda;
    if (o.decoder_beta) c.decoder_beta = *o.decoder_beta;
    if (o.input_mean || o.input_var || o.input_corr) {
        // Given input moments replace an embedding; the others keep what it produced.
        signal<double> x = s.input;
        if (s.embed) x = input_of(c);
        s.embed.reset();
        if (o.input_mean) x.mean = *o.input_mean;
        if (o.input_var) x.var = *o.input_var;
        if (o.input_corr) x.corr = *o.input_corr;
        s.input = x;
    }
    if (o.grad_var) s.output_gradient.var = *o.grad_var;
    if (o.grad_corr) s.output_gradient.corr = *o.grad_corr;
    // Per-layer sigmas from a config fit its depth and widths only; a changed dimension
    // would silently pair old sigmas with a new model, so it needs a scheme.
    if (c.scheme == "custom" && (o.layers || o.d_model || o.d_ff || o.arch))
        throw usage_error("the config gives per-layer sigmas; changing --layers, --d-model, --d-ff or --arch needs "
                          "a --scheme as well");
    return c;
}

}  // namespace sigprop::cli
