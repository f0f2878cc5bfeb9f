#include "cli/report.hpp"

#include <cmath>

#include "cli/config.hpp"
#include "sigprop/core/config.hpp"

namespace sigprop::cli {

using nlohmann::json;

std::string human(double v) {
    if (std::isnan(v)) return "n/a";
    if (std::isinf(v)) return v > 0 ? "overflow" : "-overflow";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v);
    return buf;
}

std::string layer_name(const transformer_spec<double>& s, int index) {
    if (s.arch != architecture::encoder_decoder) return "layer " + std::to_string(index + 1);
    return index < s.layers ? "encoder layer " + std::to_string(index + 1)
                            : "decoder layer " + std::to_string(index - s.layers + 1);
}

int default_every(int rows) { return rows <= 32 ? 1 : (rows + 23) / 24; }

namespace {

const char* stack_name(stack_kind k) { return k == stack_kind::encoder ? "encoder" : "decoder"; }

const char* kind_name(boundary_kind k) {
    switch (k) {
        case boundary_kind::input: return "input";
        case boundary_kind::attention: return "attention";
        case boundary_kind::cross_attention: return "cross_attention";
        case boundary_kind::ffn: return "ffn";
        default: return "final_norm";
    }
}

/// Full precision for machine-read CSV; "overflow" for +infinity, as in the table.
std::string exact(double v) {
    if (!std::isfinite(v)) return human(v);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

/// JSON has no infinity: an overflowed value is written as null (documented).
json value(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

void print_table(std::FILE* out, const transformer_spec<double>& s, const diagnostics& d, int every) {
    const bool encdec = s.arch == architecture::encoder_decoder;
    std::fprintf(out, "%-*s %11s %9s %11s %9s %11s %10s\n", encdec ? 12 : 6, "layer", "var", "corr", "grad var",
                 "grad corr", "|dW|^2", "score var");
    std::fprintf(out, "%-*s %11s %9s %11s %9s\n", encdec ? 12 : 6, "input", human(d.input.var).c_str(),
                 human(d.input.corr).c_str(), human(d.input_grad.var).c_str(), human(d.input_grad.corr).c_str());
    const int n = int(d.rows.size());
    for (int i = 0; i < n; ++i) {
        const auto& r = d.rows[std::size_t(i)];
        // Every k-th layer of each stack, and always the first and last.
        const bool last_of_stack = r.layer == s.layers;
        if (!(r.layer % every == 0 || r.layer == 1 || last_of_stack)) continue;
        const std::string name = (encdec ? std::string(r.stack == stack_kind::encoder ? "enc " : "dec ") : "") +
                                 std::to_string(r.layer);
        std::fprintf(out, "%-*s %11s %9s %11s %9s %11s %10s\n", encdec ? 12 : 6, name.c_str(), human(r.x.var).c_str(),
                     human(r.x.corr).c_str(), human(r.g.var).c_str(), human(r.g.corr).c_str(),
                     human(r.weight_grad).c_str(), human(r.score_var).c_str());
    }
}

void print_diagnostics(std::FILE* out, const transformer_spec<double>& s, const diagnostics& d) {
    std::fprintf(out, "diagnostics\n");
    if (d.overflow_layer >= 0)
        std::fprintf(out, "  OVERFLOW        variances pass the largest double at %s: the configuration explodes\n",
                     layer_name(s, d.overflow_layer).c_str());
    auto flag = [](double r) { return r > growth_flag || r < 1 / growth_flag; };
    std::fprintf(out, "  forward         stream variance grows x%s from the input to the last layer\n",
                 human(d.forward_growth).c_str());
    std::fprintf(out, "  gradient        gradient variance at the input / after the last layer = %s%s\n",
                 human(d.grad_growth).c_str(),
                 flag(d.grad_growth) ? (d.grad_growth > 1 ? "  [explodes toward the input]"
                                                          : "  [vanishes toward the input]")
                                     : "");
    std::fprintf(out, "  weight grads    E|dW|^2 first layer / last layer = %s%s\n",
                 human(d.weight_grad_ratio).c_str(), flag(d.weight_grad_ratio) ? "  [unbalanced]" : "");
    if (d.collapse_layer >= 0)
        std::fprintf(out, "  rank collapse   token correlation passes %.2f at %s\n", collapse_corr,
                     layer_name(s, d.collapse_layer).c_str());
    else
        std::fprintf(out, "  rank collapse   none (token correlation stays <= %.2f)\n", collapse_corr);
    std::fprintf(out, "  attention       largest score variance %s (%s); softmax saturates above 2 ln L = %.3g%s\n",
                 human(d.max_score_var).c_str(), layer_name(s, d.max_score_layer).c_str(), d.saturation_bound,
                 d.saturated_layer >= 0 ? ("  [entropy collapse from " + layer_name(s, d.saturated_layer) + "]").c_str()
                                        : "");
}

void print_csv(std::FILE* out, const transformer_spec<double>& s, const trajectory<double>& tr,
               const diagnostics& d) {
    std::fprintf(out, "point,stack,layer,kind,mean,var,corr,grad_var,grad_corr,weight_grad,score_var\n");
    const bool encdec = s.arch == architecture::encoder_decoder;
    for (std::size_t i = 0; i < tr.points.size(); ++i) {
        const auto& p = tr.points[i];
        // Layer-level columns go on each layer's last point (its FFN point).
        std::string wg, sv;
        if (p.kind == boundary_kind::ffn) {
            const auto& r = d.rows[std::size_t(p.layer + (encdec && p.stack == stack_kind::decoder ? s.layers : 0))];
            wg = exact(r.weight_grad);
            sv = exact(r.score_var);
        }
        std::fprintf(out, "%zu,%s,%d,%s,%s,%s,%s,%s,%s,%s,%s\n", i, stack_name(p.stack), p.layer + 1,
                     kind_name(p.kind), exact(p.x.mean).c_str(), exact(p.x.var).c_str(), exact(p.x.corr).c_str(),
                     exact(p.g.var).c_str(), exact(p.g.corr).c_str(), wg.c_str(), sv.c_str());
    }
}

json predict_document(const transformer_spec<double>& s, const std::string& scheme, const trajectory<double>& tr,
                      const diagnostics& d, const std::string& method) {
    json j;
    j["format"] = "sigprop-predict";
    j["version"] = format_version;
    j["sigprop_version"] = std::to_string(SIGPROP_VERSION_MAJOR) + "." + std::to_string(SIGPROP_VERSION_MINOR) + "." +
                           std::to_string(SIGPROP_VERSION_PATCH);
    j["method"] = method;
    j["spec"] = spec_to_json(s, scheme);
    json diag = {{"forward_growth", value(d.forward_growth)},
                 {"grad_growth", value(d.grad_growth)},
                 {"weight_grad_ratio", value(d.weight_grad_ratio)},
                 {"collapse_corr", collapse_corr},
                 {"collapse_layer", d.collapse_layer},
                 {"max_score_var", value(d.max_score_var)},
                 {"max_score_layer", d.max_score_layer},
                 {"saturation_bound", d.saturation_bound},
                 {"saturated_layer", d.saturated_layer},
                 {"overflow_layer", d.overflow_layer}};
    j["diagnostics"] = diag;
    j["points"] = json::array();
    for (const auto& p : tr.points)
        j["points"].push_back({{"stack", stack_name(p.stack)},
                               {"layer", p.layer},
                               {"kind", kind_name(p.kind)},
                               {"mean", value(p.x.mean)},
                               {"var", value(p.x.var)},
                               {"corr", value(p.x.corr)},
                               {"grad_var", value(p.g.var)},
                               {"grad_corr", value(p.g.corr)}});
    j["layers"] = json::array();
    for (std::size_t l = 0; l < tr.weight_grads.size(); ++l) {
        const auto& w = tr.weight_grads[l];
        const auto& r = d.rows[l];
        j["layers"].push_back({{"index", int(l)},
                               {"stack", stack_name(r.stack)},
                               {"layer", r.layer - 1},
                               {"score_var", value(r.score_var)},
                               {"weight_grads",
                                {{"q", value(w.q)}, {"k", value(w.k)}, {"v", value(w.v)}, {"o", value(w.o)},
                                 {"ffn1", value(w.ffn1)}, {"ffn2", value(w.ffn2)}, {"cross_q", value(w.cross_q)},
                                 {"cross_k", value(w.cross_k)}, {"cross_v", value(w.cross_v)},
                                 {"cross_o", value(w.cross_o)}}}});
    }
    return j;
}

}  // namespace sigprop::cli
