// Fuzz target (d): predict() on a transformer_spec decoded from the bytes, every field
// included (architecture, norm placement, activation, dropouts, residual weights, per-layer
// sigmas, embedding or input moments, output gradient), with depth and causal length
// bounded so one execution stays fast. predict() may only throw sigprop::invalid_argument;
// a trajectory must hold no NaN, only variances >= 0 or +inf, |corr| <= 1, and report the
// overflow it contains.
#include <cstdint>

#include "byte_reader.hpp"
#include "predict_checks.hpp"

namespace {

using sigprop::fuzz::byte_reader;

sigprop::transformer_spec<double> any_spec(byte_reader& in) {
    sigprop::transformer_spec<double> s;
    s.layers = 1 + int(in.pick(sigprop::fuzz::max_fuzz_layers));
    if (in.pick(8) == 0) s.layers = in.size();  // also the invalid sizes
    s.d_model = in.size();
    s.d_ff = in.size();
    s.heads = in.size();
    s.seq_len = in.size();
    s.source_len = in.pick(4) == 0 ? in.size() : 0;
    s.norm = static_cast<sigprop::norm_placement>(in.pick(2));
    s.final_norm = in.flag();
    s.act = static_cast<sigprop::activation>(in.pick(2));
    s.arch = static_cast<sigprop::architecture>(in.pick(3));
    s.p_hidden = in.number<double>();
    s.p_attention = in.number<double>();
    s.p_embedding = in.number<double>();
    s.lambda = in.number<double>();
    s.beta = in.number<double>();
    if (in.flag()) s.decoder_lambda = in.number<double>();
    if (in.flag()) s.decoder_beta = in.number<double>();
    // Usually the right number of per-layer sigmas, sometimes one too few or too many.
    const int stacks = s.arch == sigprop::architecture::encoder_decoder ? 2 : 1;
    long long n = s.layers >= 1 && s.layers <= sigprop::fuzz::max_fuzz_layers ? stacks * s.layers : 1;
    n += int(in.pick(8) == 0) - int(in.pick(8) == 0);
    // A layer's sigmas are all one value or all drawn: the first reaches the common
    // schemes, the second every combination.
    const bool uniform = in.flag();
    sigprop::layer_sigmas<double> w;
    for (long long i = 0; i < n; ++i) {
        if (i == 0 || !uniform) {
            for (double* v : {&w.q, &w.k, &w.v, &w.o, &w.ffn1, &w.ffn2, &w.cross_q, &w.cross_k, &w.cross_v,
                              &w.cross_o})
                *v = uniform && v != &w.q ? w.q : in.number<double>();
        }
        s.sigmas.push_back(w);
    }
    if (in.flag()) {
        sigprop::embedding<double> e;
        for (unsigned t = in.pick(4); t > 0; --t) e.tables.push_back({in.number<double>(), in.number<double>()});
        s.embed = e;
    } else {
        s.input = {in.number<double>(), in.number<double>(), in.number<double>()};
    }
    s.output_gradient = {in.number<double>(), in.number<double>()};
    return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    byte_reader in(data, size);
    const sigprop::transformer_spec<double> s = any_spec(in);
    if (!sigprop::fuzz::cheap_enough(s)) return 0;
    sigprop::fuzz::only_throws<sigprop::invalid_argument>([&] { sigprop::fuzz::check(sigprop::predict(s)); });
    return 0;
}
