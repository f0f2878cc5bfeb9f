// JSON configs: strict reading (every key known, every value of the right type) and an
// exact writer (nlohmann::json prints doubles in their shortest round-trip form, so a
// spec written and read back is bit-identical).
#include "cli/config.hpp"

#include <cmath>
#include <fstream>
#include <set>

#include "cli/presets.hpp"

namespace sigprop::cli {

using nlohmann::json;

std::string to_string(norm_placement n) {
    switch (n) {
        case norm_placement::pre: return "pre";
        case norm_placement::post: return "post";
        default: return "none";
    }
}
std::string to_string(activation a) { return a == activation::relu ? "relu" : "gelu"; }
std::string to_string(architecture a) {
    switch (a) {
        case architecture::encoder: return "encoder";
        case architecture::decoder: return "decoder";
        default: return "encoder-decoder";
    }
}

norm_placement parse_norm(const std::string& s) {
    if (s == "pre") return norm_placement::pre;
    if (s == "post") return norm_placement::post;
    if (s == "none") return norm_placement::none;
    throw usage_error("unknown norm placement '" + s + "' (pre, post or none)");
}
activation parse_activation(const std::string& s) {
    if (s == "relu") return activation::relu;
    if (s == "gelu") return activation::gelu;
    throw usage_error("unknown activation '" + s + "' (relu or gelu)");
}
architecture parse_architecture(const std::string& s) {
    if (s == "encoder") return architecture::encoder;
    if (s == "decoder") return architecture::decoder;
    if (s == "encoder-decoder") return architecture::encoder_decoder;
    throw usage_error("unknown architecture '" + s + "' (encoder, decoder or encoder-decoder)");
}

namespace {

double number(const json& j, const std::string& key) {
    if (!j.is_number()) throw usage_error("config: '" + key + "' must be a number, got " + j.dump());
    return j.get<double>();
}

int integer(const json& j, const std::string& key) {
    if (!j.is_number_integer() || j.get<long long>() < -2147483647 || j.get<long long>() > 2147483647)
        throw usage_error("config: '" + key + "' must be an integer, got " + j.dump());
    return j.get<int>();
}

std::string text(const json& j, const std::string& key) {
    if (!j.is_string()) throw usage_error("config: '" + key + "' must be a string, got " + j.dump());
    return j.get<std::string>();
}

bool boolean(const json& j, const std::string& key) {
    if (!j.is_boolean()) throw usage_error("config: '" + key + "' must be true or false, got " + j.dump());
    return j.get<bool>();
}

/// Calls f(key, value) for every member of an object whose keys are all in `known`.
template <class F>
void members(const json& j, const std::string& what, std::initializer_list<const char*> known, F f) {
    if (!j.is_object()) throw usage_error("config: '" + what + "' must be an object, got " + j.dump());
    const std::set<std::string> ok(known.begin(), known.end());
    for (const auto& [k, v] : j.items()) {
        if (!ok.count(k)) throw usage_error("config: unknown key '" + (what.empty() ? k : what + "." + k) + "'");
        f(k, v);
    }
}

layer_sigmas<double> sigmas_from(const json& j, const std::string& where) {
    layer_sigmas<double> w;
    members(j, where, {"q", "k", "v", "o", "ffn1", "ffn2", "cross_q", "cross_k", "cross_v", "cross_o"},
            [&](const std::string& k, const json& v) {
                const double x = number(v, where + "." + k);
                if (k == "q") w.q = x;
                else if (k == "k") w.k = x;
                else if (k == "v") w.v = x;
                else if (k == "o") w.o = x;
                else if (k == "ffn1") w.ffn1 = x;
                else if (k == "ffn2") w.ffn2 = x;
                else if (k == "cross_q") w.cross_q = x;
                else if (k == "cross_k") w.cross_k = x;
                else if (k == "cross_v") w.cross_v = x;
                else w.cross_o = x;
            });
    return w;
}

json sigmas_to(const layer_sigmas<double>& w) {
    return {{"q", w.q},           {"k", w.k},           {"v", w.v},           {"o", w.o},
            {"ffn1", w.ffn1},     {"ffn2", w.ffn2},     {"cross_q", w.cross_q}, {"cross_k", w.cross_k},
            {"cross_v", w.cross_v}, {"cross_o", w.cross_o}};
}

}  // namespace

void apply_json(const json& j, model_config& c) {
    if (!j.is_object()) throw usage_error("config: expected a JSON object, got " + j.dump());
    if (j.contains("version") && j["version"] != format_version)
        throw usage_error("config: version " + j["version"].dump() + " is not supported (this tool reads " +
                          std::to_string(format_version) + ")");
    if (j.contains("preset")) {
        const std::string name = text(j["preset"], "preset");
        const preset* p = find_preset(name);
        if (!p) throw usage_error("config: unknown preset '" + name + "'");
        c = p->make();
    }
    auto& s = c.spec;
    bool sigmas_given = false;
    members(j, "",
            {"format", "version", "preset", "derived_from", "layers", "d_model", "d_ff", "heads", "seq_len",
             "source_len", "norm", "final_norm", "act", "arch", "p_hidden", "p_attention", "p_embedding",
             "scheme", "sigma", "dslm_k", "dslm_resolved", "embedding_norm", "lambda", "beta", "decoder_lambda", "decoder_beta", "input",
             "output_gradient", "embedding", "sigmas"},
            [&](const std::string& k, const json& v) {
                if (k == "format") {
                    if (v != "sigprop-spec") throw usage_error("config: 'format' must be \"sigprop-spec\"");
                } else if (k == "version" || k == "preset" || k == "derived_from") {
                    // handled above / informational
                } else if (k == "layers") s.layers = integer(v, k);
                else if (k == "d_model") s.d_model = integer(v, k);
                else if (k == "d_ff") s.d_ff = integer(v, k);
                else if (k == "heads") s.heads = integer(v, k);
                else if (k == "seq_len") s.seq_len = integer(v, k);
                else if (k == "source_len") s.source_len = integer(v, k);
                else if (k == "norm") s.norm = parse_norm(text(v, k));
                else if (k == "final_norm") s.final_norm = boolean(v, k);
                else if (k == "act") s.act = parse_activation(text(v, k));
                else if (k == "arch") s.arch = parse_architecture(text(v, k));
                else if (k == "p_hidden") s.p_hidden = number(v, k);
                else if (k == "p_attention") s.p_attention = number(v, k);
                else if (k == "p_embedding") s.p_embedding = number(v, k);
                else if (k == "scheme") {
                    c.scheme = text(v, k);
                    if (!known_scheme(c.scheme)) throw usage_error("config: unknown scheme '" + c.scheme + "'");
                } else if (k == "sigma") c.sigma = number(v, k);
                else if (k == "dslm_k") c.dslm_k = number(v, k);
                else if (k == "dslm_resolved") c.dslm_resolved = boolean(v, k);
                else if (k == "embedding_norm") c.embedding_norm = boolean(v, k);
                else if (k == "lambda") c.lambda = number(v, k);
                else if (k == "beta") c.beta = number(v, k);
                else if (k == "decoder_lambda") c.decoder_lambda = number(v, k);
                else if (k == "decoder_beta") c.decoder_beta = number(v, k);
                else if (k == "input") {
                    signal<double> x{0, 1, 0};
                    members(v, k, {"mean", "var", "corr"}, [&](const std::string& m, const json& e) {
                        (m == "mean" ? x.mean : m == "var" ? x.var : x.corr) = number(e, "input." + m);
                    });
                    s.input = x;
                    s.embed.reset();
                } else if (k == "output_gradient") {
                    gradient<double> g{1, 0};
                    members(v, k, {"var", "corr"}, [&](const std::string& m, const json& e) {
                        (m == "var" ? g.var : g.corr) = number(e, "output_gradient." + m);
                    });
                    s.output_gradient = g;
                } else if (k == "embedding") {
                    if (v.is_null()) { s.embed.reset(); return; }
                    if (!v.is_array() || v.empty())
                        throw usage_error("config: 'embedding' must be a non-empty array of tables or null");
                    embedding<double> e;
                    for (std::size_t i = 0; i < v.size(); ++i) {
                        embedding_table<double> t{1, 0};
                        const std::string where = "embedding[" + std::to_string(i) + "]";
                        members(v[i], where, {"sigma", "same_row"}, [&](const std::string& m, const json& x) {
                            (m == "sigma" ? t.sigma : t.same_row) = number(x, where + "." + m);
                        });
                        e.tables.push_back(t);
                    }
                    s.embed = e;
                } else {  // sigmas
                    if (!v.is_array()) throw usage_error("config: 'sigmas' must be an array of per-layer objects");
                    s.sigmas.clear();
                    for (std::size_t i = 0; i < v.size(); ++i)
                        s.sigmas.push_back(sigmas_from(v[i], "sigmas[" + std::to_string(i) + "]"));
                    sigmas_given = true;
                }
            });
    // A config's embedding is its model's own: no embedding LayerNorm unless it says so
    // (a preset's would otherwise carry over).
    if (j.contains("embedding") && !j.contains("embedding_norm")) c.embedding_norm = false;
    // Explicit sigmas are the weights; a scheme would overwrite them.
    if (sigmas_given) {
        if (j.contains("scheme") && c.scheme != "custom")
            throw usage_error("config: 'sigmas' are given, so 'scheme' must be \"custom\" (or absent)");
        c.scheme = "custom";
    }
}

void apply_config_file(const std::string& path, model_config& c) {
    std::ifstream in(path);
    if (!in) throw usage_error("cannot read '" + path + "'");
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception&) {
        throw usage_error("'" + path + "' is not valid JSON");
    }
    // The documents of `predict --json` and `init` carry the model under "spec".
    if (j.is_object() && j.contains("spec") && j.contains("format") && j["format"] != "sigprop-spec") {
        const auto& f = j["format"];
        if (f != "sigprop-predict" && f != "sigprop-init")
            throw usage_error("'" + path + "': unknown format " + f.dump());
        j = j["spec"];
    }
    try {
        apply_json(j, c);
    } catch (const usage_error& e) {
        throw usage_error("'" + path + "': " + e.what());
    }
}

json spec_to_json(const transformer_spec<double>& s, const std::string& derived_from) {
    json j = {{"format", "sigprop-spec"},
              {"version", format_version},
              {"derived_from", derived_from},
              {"layers", s.layers},
              {"d_model", s.d_model},
              {"d_ff", s.d_ff},
              {"heads", s.heads},
              {"seq_len", s.seq_len},
              {"source_len", s.source_len},
              {"norm", to_string(s.norm)},
              {"final_norm", s.final_norm},
              {"act", to_string(s.act)},
              {"arch", to_string(s.arch)},
              {"p_hidden", s.p_hidden},
              {"p_attention", s.p_attention},
              {"p_embedding", s.p_embedding},
              {"scheme", "custom"},
              {"lambda", s.lambda},
              {"beta", s.beta},
              {"output_gradient", {{"var", s.output_gradient.var}, {"corr", s.output_gradient.corr}}}};
    if (s.decoder_lambda) j["decoder_lambda"] = *s.decoder_lambda;
    if (s.decoder_beta) j["decoder_beta"] = *s.decoder_beta;
    if (s.embed) {
        j["embedding"] = json::array();
        for (const auto& t : s.embed->tables) j["embedding"].push_back({{"sigma", t.sigma}, {"same_row", t.same_row}});
    } else {
        j["input"] = {{"mean", s.input.mean}, {"var", s.input.var}, {"corr", s.input.corr}};
    }
    j["sigmas"] = json::array();
    for (const auto& w : s.sigmas) j["sigmas"].push_back(sigmas_to(w));
    return j;
}

}  // namespace sigprop::cli
