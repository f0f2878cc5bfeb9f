// A whole model with a custom initialisation: a 48-layer Pre-LN decoder whose output
// projections shrink with depth (sigma_o, sigma_ffn2 scaled by 1/sqrt(layer)), predicted
// with predict() and compared with GPT-2's scheme (every output projection 0.02/sqrt(2N)).
#include <cmath>
#include <cstdio>

#include <sigprop/models.hpp>

namespace {

using T = double;

sigprop::transformer_spec<T> base() {
    sigprop::transformer_spec<T> s;
    s.layers = 48;
    s.d_model = 1024;
    s.d_ff = 4096;
    s.heads = 16;
    s.seq_len = 1024;
    s.arch = sigprop::architecture::decoder;
    s.norm = sigprop::norm_placement::pre;
    s.final_norm = true;
    return s;
}

void summary(const char* name, const sigprop::transformer_spec<T>& s) {
    const auto t = sigprop::predict(s);
    const auto& first = t.points.front();
    const auto& last = t.points.back();
    std::printf("%-22s output var %9.4g  token corr %6.4f  gradient growth (input/output) %9.4g\n", name,
                t.points[t.points.size() - 2].x.var, last.x.corr, first.g.var / last.g.var);
}

}  // namespace

int main() {
    auto gpt2 = base();
    sigprop::apply_gpt2(gpt2);
    summary("gpt2", gpt2);

    auto custom = base();
    custom.sigmas.assign(std::size_t(custom.layers), {});  // every weight N(0, 0.02^2) ...
    for (int l = 0; l < custom.layers; ++l) {              // ... but the outputs shrink with depth
        auto& w = custom.sigmas[std::size_t(l)];
        w.o = w.ffn2 = T(0.02) / std::sqrt(T(l + 1));
    }
    summary("custom 0.02/sqrt(l)", custom);
    return 0;
}
