// sigprop predict: one model's per-layer table, diagnostics, CSV, JSON and plot.
#include <cstdio>

#include "cli/commands.hpp"
#include "cli/config.hpp"
#include "cli/diagnostics.hpp"
#include "cli/plot.hpp"
#include "cli/report.hpp"
#include "sigprop/models/resolved_backward.hpp"

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

/// The position-resolved trajectory, refused up front where predict_resolved cannot
/// describe the model or its L x L states would not fit in memory (it keeps four per block).
trajectory<double> resolved_trajectory(const transformer_spec<double>& s) {
    if (s.arch == architecture::encoder_decoder)
        throw usage_error("--resolved describes encoder or decoder stacks, not an encoder-decoder");
    const double bytes = 4.0 * 2.0 * s.layers * double(s.seq_len) * double(s.seq_len) * sizeof(double);
    constexpr double limit = 8.0 * (1ull << 30);
    if (bytes > limit) {
        char buf[200];
        std::snprintf(buf, sizeof buf,
                      "--resolved with %d layers and L %d needs about %.3g GiB (limit 8 GiB); use fewer layers or "
                      "a shorter sequence", s.layers, s.seq_len, bytes / double(1ull << 30));
        throw usage_error(buf);
    }
    return predict_resolved(s);
}

}  // namespace

int run_predict(const predict_options& o) {
    if (o.csv && o.json) throw usage_error("--csv and --json both write to stdout; choose one");
    if (o.every < 0) throw usage_error("--every must be >= 1");
    const model_config c = resolve(o.model);
    const transformer_spec<double> s = build(c);
    const trajectory<double> tr = o.resolved ? resolved_trajectory(s) : predict(s);
    const diagnostics d = diagnose(s, tr);
    if (o.json) {
        std::printf("%s\n", predict_document(s, c.scheme, tr, d, o.resolved ? "predict_resolved" : "predict").dump(1).c_str());
    } else if (o.csv) {
        print_csv(stdout, s, tr, d);
    } else {
        std::printf("%s%s\n", describe(s, c.scheme).c_str(), o.resolved ? " (position-resolved)" : "");
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
