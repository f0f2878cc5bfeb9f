// sigprop predict: one model's per-layer table, diagnostics, CSV, JSON and plot.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/config.hpp"
#include "cli/diagnostics.hpp"
#include "cli/plot.hpp"
#include "cli/report.hpp"

namespace sigprop::cli {

namespace {

std::string describe(const transformer_spec<double>& s, const std::string& scheme) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s, %d layers%s, d %d, %d heads, d_ff %d, L %d, %s-LN, %s, scheme %s",
                  to_string(s.arch).c_str(), s.layers, s.arch == architecture::encoder_decoder ? " per stack" : "",
                  s.d_model, s.heads, s.d_ff, s.seq_len, to_string(s.norm).c_str(), to_string(s.act).c_str(),
                  scheme.c_str());
    return buf;
}

}  // namespace

int run_predict(const predict_options& o) {
    if (o.csv && o.json) throw usage_error("--csv and --json both write to stdout; choose one");
    if (o.every < 0) throw usage_error("--every must be >= 1");
    const model_config c = resolve(o.model);
    const transformer_spec<double> s = build(c);
    const trajectory<double> tr = predict(s);
    const diagnostics d = diagnose(s, tr);
    if (o.json) {
        std::printf("%s\n", predict_document(s, c.scheme, tr, d).dump(1).c_str());
    } else if (o.csv) {
        print_csv(stdout, s, tr, d);
    } else {
        std::printf("%s\n", describe(s, c.scheme).c_str());
        std::printf("input: mean %s, var %s, corr %s; residual lambda %s, beta %s\n\n", human(d.input.mean).c_str(),
                    human(d.input.var).c_str(), human(d.input.corr).c_str(), human(s.lambda).c_str(),
                    human(s.beta).c_str());
        const int every = o.every > 0 ? o.every : default_every(s.layers);
        std::printf("after each layer%s (var, corr: the stream; grad: dLoss/dstream; |dW|^2: sum over the layer's\n"
                    "matrices; score var: what its softmax sees, saturating above %.3g)\n",
                    every > 1 ? (", every " + std::to_string(every) + " layers").c_str() : "", d.saturation_bound);
        print_table(stdout, s, d, every);
        std::printf("\n");
        print_diagnostics(stdout, s, d);
    }
    if (!o.plot.empty()) plot(o.plot, d, "sigprop predict: " + describe(s, c.scheme));
    return 0;
}

}  // namespace sigprop::cli
