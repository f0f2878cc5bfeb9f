#pragma once
// The command-line options that edit a model (shared by `predict` and `init`): a base
// (built-in model, preset, --config), then every spec field and scheme knob by name.
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/model_config.hpp"

namespace sigprop::cli {

/// What the options asked for; unset fields leave the base model as it is.
struct model_options {
    std::string preset, config;
    std::optional<int> layers, d_model, d_ff, heads, seq_len, source_len;
    std::optional<std::string> norm, act, arch, scheme;
    std::optional<bool> final_norm, dslm_resolved;
    std::optional<double> p_hidden, p_attention, p_embedding, dropout;
    std::optional<double> sigma, dslm_k, lambda, beta, decoder_lambda, decoder_beta;
    std::optional<double> input_mean, input_var, input_corr, grad_var, grad_corr;
    /// True when any option that edits the model was given (not counting preset/config).
    bool any() const;
};

void add_model_options(CLI::App& app, model_options& o);

/// The model: the preset (or the built-in default model), then --config, then the options.
/// Throws usage_error for an unknown preset, scheme or enum value.
model_config resolve(const model_options& o);

}  // namespace sigprop::cli
