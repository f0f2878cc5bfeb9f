// sigprop init: a scheme's initialisation for a model as JSON (schema: docs/TOOL.md,
// "init"), for a training script to apply (examples/pytorch_init.py).
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/config.hpp"
#include "sigprop/core/config.hpp"
#include "sigprop/validation/output_file.hpp"

namespace sigprop::cli {

namespace {

nlohmann::json init_document(const transformer_spec<double>& s, const std::string& scheme) {
    nlohmann::json j;
    j["format"] = "sigprop-init";
    j["version"] = format_version;
    j["scheme"] = scheme;
    j["norm"] = to_string(s.norm);
    j["lambda"] = s.lambda;
    j["beta"] = s.beta;
    const bool encdec = s.arch == architecture::encoder_decoder;
    if (encdec) {
        j["decoder_lambda"] = s.decoder_lambda.value_or(s.lambda);
        j["decoder_beta"] = s.decoder_beta.value_or(s.beta);
    }
    j["layers"] = nlohmann::json::array();
    for (std::size_t i = 0; i < s.sigmas.size(); ++i) {
        const auto& w = s.sigmas[i];
        const bool dec = s.arch == architecture::decoder || (encdec && int(i) >= s.layers);
        nlohmann::json l = {{"index", int(i)},
                            {"stack", dec ? "decoder" : "encoder"},
                            {"layer", encdec && dec ? int(i) - s.layers : int(i)},
                            {"q", w.q}, {"k", w.k}, {"v", w.v}, {"o", w.o},
                            {"ffn1", w.ffn1}, {"ffn2", w.ffn2}};
        if (encdec && dec) {
            l["cross_q"] = w.cross_q;
            l["cross_k"] = w.cross_k;
            l["cross_v"] = w.cross_v;
            l["cross_o"] = w.cross_o;
        }
        j["layers"].push_back(l);
    }
    if (s.embed) {
        j["embedding"] = nlohmann::json::array();
        for (const auto& t : s.embed->tables) j["embedding"].push_back({{"sigma", t.sigma}});
    }
    j["spec"] = spec_to_json(s, scheme);
    return j;
}

}  // namespace

int run_init(const init_options& o) {
    const model_config c = resolve(o.model);
    const auto s = build(c);
    const std::string text = init_document(s, c.scheme).dump(1) + "\n";
    if (o.output.empty() || o.output == "-") {
        std::fputs(text.c_str(), stdout);
        return 0;
    }
    // Written under a temporary name and renamed: a failed or interrupted run leaves no
    // partial file.
    try {
        validation::write_file_atomically(o.output, text);
    } catch (const validation::output_error& e) {
        throw usage_error(e.what());
    }
    return 0;
}

}  // namespace sigprop::cli
