// predict() for whole models: the goal is <= 100 us for a 1000-layer model with
// weight-gradient norms. Encoder (bidirectional) and decoder (causal: O(seq_len) per
// attention block, see docs/theory/models.md) are measured separately.
#include <benchmark/benchmark.h>

#include "sigprop/models/predict.hpp"

namespace {

template <class T>
sigprop::transformer_spec<T> model(int layers, sigprop::architecture arch, sigprop::norm_placement norm) {
    sigprop::transformer_spec<T> s;
    s.layers = layers;
    s.arch = arch;
    s.norm = norm;
    s.d_model = 1024;
    s.d_ff = 4096;
    s.heads = 16;
    s.seq_len = 512;
    s.p_hidden = T(0.1);
    s.p_attention = T(0.1);
    s.sigmas.assign(std::size_t(arch == sigprop::architecture::encoder_decoder ? 2 * layers : layers), {});
    return s;
}

template <class T>
void predict_model(benchmark::State& state, sigprop::architecture arch, sigprop::norm_placement norm) {
    auto s = model<T>(int(state.range(0)), arch, norm);
    for (auto _ : state) {
        s.input.var += T(1e-7);  // nothing can be hoisted out of the loop
        auto t = sigprop::predict(s);
        benchmark::DoNotOptimize(t.points.data());
        benchmark::DoNotOptimize(t.weight_grads.data());
    }
}

void encoder_pre(benchmark::State& st) { predict_model<double>(st, sigprop::architecture::encoder, sigprop::norm_placement::pre); }
void encoder_post(benchmark::State& st) { predict_model<double>(st, sigprop::architecture::encoder, sigprop::norm_placement::post); }
void encoder_pre_float(benchmark::State& st) { predict_model<float>(st, sigprop::architecture::encoder, sigprop::norm_placement::pre); }
void decoder_pre(benchmark::State& st) { predict_model<double>(st, sigprop::architecture::decoder, sigprop::norm_placement::pre); }
void encoder_decoder_pre(benchmark::State& st) { predict_model<double>(st, sigprop::architecture::encoder_decoder, sigprop::norm_placement::pre); }

BENCHMARK(encoder_pre)->Arg(12)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(encoder_post)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(encoder_pre_float)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(decoder_pre)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(encoder_decoder_pre)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
