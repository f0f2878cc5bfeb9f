#pragma once
// The JSON form of a model (docs/TOOL.md, "Config files"): read by --config, written
// inside the documents of `predict --json` and `init`. Reading is strict: an unknown key,
// a wrong type or an impossible value is an error naming the key.
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/model_config.hpp"

namespace sigprop::cli {

/// Bad command-line or config input the tool reports in one line with exit status 2.
class usage_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

inline constexpr int format_version = 1;

std::string to_string(norm_placement n);
std::string to_string(activation a);
std::string to_string(architecture a);
norm_placement parse_norm(const std::string& s);
activation parse_activation(const std::string& s);
architecture parse_architecture(const std::string& s);

/// Applies the keys of a config object to c (a "preset" key first, then the others).
void apply_json(const nlohmann::json& j, model_config& c);
/// Reads FILE.json: a config object, or a document written by `predict --json` or `init`
/// (whose "spec" member is used).
void apply_config_file(const std::string& path, model_config& c);
/// The resolved spec as a config that reproduces it exactly: scheme "custom", every
/// per-layer sigma, the residual weights; `derived_from` names the scheme that made it.
nlohmann::json spec_to_json(const transformer_spec<double>& s, const std::string& derived_from);

}  // namespace sigprop::cli
