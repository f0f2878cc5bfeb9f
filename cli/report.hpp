#pragma once
// The outputs of `sigprop predict`: the per-layer table and the diagnostics in words,
// CSV, and the JSON document (schema in docs/TOOL.md, "predict --json").
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/diagnostics.hpp"

namespace sigprop::cli {

/// A number for people: "overflow" for +inf (the configuration explodes), "n/a" for a
/// value that does not exist, never "nan".
std::string human(double v);
/// "encoder layer 3" / "layer 3" (1-based) for an index in spec.sigmas order.
std::string layer_name(const transformer_spec<double>& s, int index);

/// The default stride of the table: about 24 rows whatever the depth.
int default_every(int rows);

void print_table(std::FILE* out, const transformer_spec<double>& s, const diagnostics& d, int every);
void print_diagnostics(std::FILE* out, const transformer_spec<double>& s, const diagnostics& d);
void print_csv(std::FILE* out, const transformer_spec<double>& s, const trajectory<double>& tr,
               const diagnostics& d);
/// `method`: "predict" or "predict_resolved", the function that computed `tr`.
nlohmann::json predict_document(const transformer_spec<double>& s, const std::string& scheme,
                                const trajectory<double>& tr, const diagnostics& d,
                                const std::string& method = "predict");

}  // namespace sigprop::cli
