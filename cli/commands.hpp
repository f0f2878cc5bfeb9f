#pragma once
// The subcommands of the sigprop tool.
#include <string>

#include "cli/options.hpp"

namespace sigprop::cli {

struct predict_options {
    model_options model;
    int every{0};  ///< table stride; 0: about 24 rows
    bool csv{false}, json{false};
    bool resolved{false};  ///< predict_resolved instead of predict
    std::string plot;
};

struct init_options {
    model_options model;
    std::string output;  ///< file; empty: stdout
};

/// `sigprop predict`; with nothing given, the built-in comparison (story.cpp).
int run_predict(const predict_options& o);
int run_story();
/// `sigprop init`.
int run_init(const init_options& o);

}  // namespace sigprop::cli
