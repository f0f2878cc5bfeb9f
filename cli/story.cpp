// The built-in `sigprop predict` with no arguments: the paper's argument in one screen.
// A 192-layer model of BERT-large's width under Pre-/Post-LN and Xavier/DSLM, side by side.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/diagnostics.hpp"
#include "cli/presets.hpp"
#include "cli/report.hpp"

namespace sigprop::cli {

int run_story() {
    struct row {
        const char* label;
        norm_placement norm;
        const char* scheme;
    };
    const row rows[] = {{"Pre-LN   Xavier", norm_placement::pre, "xavier"},
                        {"Post-LN  Xavier", norm_placement::post, "xavier"},
                        {"Pre-LN   DSLM", norm_placement::pre, "dslm"},
                        {"Post-LN  DSLM", norm_placement::post, "dslm"}};
    // No dropout: it decorrelates tokens at random and would hide the collapse that the
    // weights alone produce.
    model_config base = detail::deep_bert_large();
    base.spec.p_hidden = base.spec.p_attention = base.spec.p_embedding = 0;
    const auto& b = base.spec;
    std::printf("sigprop: signal propagation at initialisation, in closed form (Kedia et al., ICML 2024)\n\n");
    std::printf("A %d-layer encoder of BERT-large's width: d %d, %d heads, d_ff %d, L %d, GELU, no dropout.\n",
                b.layers, b.d_model, b.heads, b.d_ff, b.seq_len);
    std::printf("Xavier: every matrix N(0, 2/(fan_in + fan_out)), y = x + F(x).\n"
                "DSLM (DeepScaleLM): y = lambda x + beta F(x), lambda^2 + beta^2 = 1, beta^2 = 1/%d, weights set\n"
                "so that every branch outputs unit variance.\n\n",
                b.layers);
    std::printf("%-16s %14s %15s %15s %16s\n", "", "fwd variance", "grad variance", "E|dW|^2", "rank collapse");
    std::printf("%-16s %14s %15s %15s %16s\n", "", "last / input", "first / last", "first / last", "(corr > 0.99)");
    for (const auto& r : rows) {
        model_config c = base;
        c.spec.norm = r.norm;
        c.scheme = r.scheme;
        const auto s = build(c);
        const auto d = diagnose(s, predict(s));
        const std::string collapse = d.collapse_layer >= 0 ? "layer " + std::to_string(d.collapse_layer + 1) : "none";
        std::printf("%-16s %14s %15s %15s %16s\n", r.label, human(d.forward_growth).c_str(),
                    human(d.grad_growth).c_str(), human(d.weight_grad_ratio).c_str(), collapse.c_str());
    }
    std::printf("\nPre-LN + Xavier: the stream variance grows linearly with depth and the gradient grows\n"
                "toward the input, so the first layers get far larger weight gradients than the last.\n"
                "Post-LN + Xavier: every layer pulls the tokens together until they are indistinguishable\n"
                "(rank collapse), and the gradient falls steeply over the last layers (the least\n"
                "accurate of these predictions: docs/ACCURACY.md, \"Whole models\").\n"
                "DSLM: unit variance, gradients within a small factor, no collapse.\n\n");
    std::printf("Next: sigprop predict --norm post --scheme xavier --dropout 0   (per-layer table, diagnostics)\n"
                "      sigprop predict bert-large --layers 192 --scheme dslm --plot dslm.png\n"
                "      sigprop predict --help | sigprop init --help | sigprop presets\n");
    return 0;
}

}  // namespace sigprop::cli
