// sigprop: the command-line tool. `predict` (the closed-form prediction, the main job),
// `init` (a scheme's weights as JSON), `presets`, and `validate` (the Monte-Carlo
// validator, the same code as sigprop-validate). Usage: docs/TOOL.md.
//
// Bad input of any kind - an unknown preset or option, a malformed or impossible config -
// exits with status 2 and one line on stderr naming the problem.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>

#include <CLI/CLI.hpp>

#include "cli/commands.hpp"
#include "cli/config.hpp"
#include "cli/presets.hpp"
#include "validate_command.hpp"

namespace {

int fail(const char* what) {
    std::fprintf(stderr, "sigprop: error: %s\n", what);
    return 2;
}

int list_presets() {
    for (const auto& p : sigprop::cli::presets) {
        const std::string vocab = p.vocab > 0 ? "vocabulary " + std::to_string(p.vocab) : "no vocabulary";
        std::printf("%-12s %s; %s\n%-12s source: %s\n", std::string(p.name).c_str(), std::string(p.summary).c_str(),
                    vocab.c_str(), "", std::string(p.source).c_str());
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace sigprop::cli;
    // The validator keeps its own command line (sigprop-validate's options, under this name).
    if (argc >= 2 && std::strcmp(argv[1], "validate") == 0)
        return sigprop::validation::validate_command(argc - 1, argv + 1, "sigprop validate");

    CLI::App app{"sigprop: how signal and gradient moments propagate through a randomly initialised transformer",
                 "sigprop"};
    app.require_subcommand(1);
    predict_options po;
    auto* predict = app.add_subcommand(
        "predict", "closed-form moments at every layer, with diagnostics; no arguments: the built-in comparison");
    add_model_options(*predict, po.model);
    predict->add_option("--every", po.every, "show every k-th layer in the table (default: about 24 rows)");
    predict->add_flag("--resolved", po.resolved,
                      "position-resolved prediction (predict_resolved): more accurate for decoders, "
                      "O(layers L^2) time and memory; encoder or decoder stacks, zero input mean");
    predict->add_flag("--csv", po.csv, "print every residual boundary as CSV instead of the table");
    predict->add_flag("--json", po.json, "print the prediction as JSON (docs/TOOL.md) instead of the table");
    predict->add_option("--plot", po.plot, "also draw a 4-panel PNG with gnuplot");
    init_options io;
    auto* init = app.add_subcommand("init", "a scheme's per-layer sigmas, lambda and beta for a model, as JSON");
    add_model_options(*init, io.model);
    init->add_option("-o,--output", io.output, "write here instead of stdout");
    app.add_subcommand("presets", "list the named models and their sources");
    app.add_subcommand("validate", "the Monte-Carlo validator (sigprop validate --help)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        return fail(e.what());
    }
    try {
        if (app.got_subcommand("presets")) return list_presets();
        if (*init) return run_init(io);
        const bool nothing = po.model.preset.empty() && po.model.config.empty() && !po.model.any() &&
                             !po.csv && !po.json && !po.resolved && po.plot.empty() && po.every == 0;
        return nothing ? run_story() : run_predict(po);
    } catch (const usage_error& e) {
        return fail(e.what());
    } catch (const sigprop::invalid_argument& e) {
        return fail(e.what());
    } catch (const std::bad_alloc&) {
        return fail("out of memory (try fewer --layers)");
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}
