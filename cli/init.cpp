// sigprop init: a scheme's initialisation for a model as JSON (schema: docs/TOOL.md,
// "init"), for a training script to apply (examples/pytorch_init.py).
#include <cstdio>
#include <fstream>

#include <unistd.h>

#include "cli/commands.hpp"
#include "cli/config.hpp"
#include "sigprop/core/config.hpp"

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
    // Written under a temporary name and renamed: a failed run leaves no partial file.
    const std::string tmp = o.output + ".tmp." + std::to_string(::getpid());
    {
        std::ofstream f(tmp);
        f << text;
        if (!f.flush()) {
            std::remove(tmp.c_str());
            throw usage_error("cannot write '" + o.output + "'");
        }
    }
    if (std::rename(tmp.c_str(), o.output.c_str()) != 0) {
        std::remove(tmp.c_str());
        throw usage_error("cannot write '" + o.output + "'");
    }
    return 0;
}

}  // namespace sigprop::cli
