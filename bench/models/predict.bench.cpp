// predict() for whole models: the goal is <= 100 us for a 1000-layer model with
// weight-gradient norms. Encoder (bidirectional) and decoder (causal: one O(seq_len) table
// per call, then O(1) per attention block apart from the rows where a softmax clamp binds,
// see docs/theory/models.md section 7) are measured separately. Also: predict()
// against one CPU Monte-Carlo run of the same small model, and a parallel sweep of 10^5
// specs (a trainability map).
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include <Eigen/Core>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "sigprop/models/predict.hpp"
#include "sigprop/models/resolved_backward.hpp"
#include "sigprop/validation/models/transformer.hpp"

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

// The position-resolved entry points (O(layers L^2)) on a 12-layer d = 256 decoder, per
// call; docs/theory/models.md sections 8 and 10 quote them per layer (divide by 12).
template <bool Backward>
void decoder_resolved(benchmark::State& state) {
    auto s = model<double>(12, sigprop::architecture::decoder, sigprop::norm_placement::pre);
    s.d_model = 256;
    s.d_ff = 1024;
    s.heads = 4;
    s.seq_len = int(state.range(0));
    for (auto _ : state) {
        s.input.var += 1e-7;
        if constexpr (Backward) {
            auto t = sigprop::predict_resolved(s);
            benchmark::DoNotOptimize(t.points.data());
        } else {
            auto f = sigprop::predict_forward_resolved(s);
            benchmark::DoNotOptimize(f.data());
        }
    }
}
BENCHMARK(decoder_resolved<false>)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);
BENCHMARK(decoder_resolved<true>)->Arg(128)->Arg(512)->Unit(benchmark::kMillisecond);

// predict() and one whole-model Monte-Carlo run (one sequence, one weight draw, forward and
// backward with the weight gradients) of the same 12-layer model: d_model 64, d_ff 256,
// 4 heads, L 32, Pre-LN, GeLU, dropout 0.1, double. bench-report.py prints their ratio.
sigprop::transformer_spec<double> small_model() {
    sigprop::transformer_spec<double> s;
    s.layers = 12;
    s.d_model = 64;
    s.d_ff = 256;
    s.heads = 4;
    s.seq_len = 32;
    s.p_hidden = 0.1;
    s.p_attention = 0.1;
    s.sigmas.assign(12, {0.125, 0.125, 0.125, 0.125, 0.125, 0.0625});
    return s;
}

void predict_small(benchmark::State& state) {
    auto s = small_model();
    for (auto _ : state) {
        s.input.var += 1e-7;
        auto t = sigprop::predict(s);
        benchmark::DoNotOptimize(t.points.data());
    }
}

void model_mc_small(benchmark::State& state) {
    namespace v = sigprop::validation;
    const auto s = small_model();
    v::transformer_mc m(s);
    m.keep_weight_gradients = true;
    Eigen::MatrixXd g(s.seq_len, s.d_model);
    std::uint32_t run = 0;
    for (auto _ : state) {
        const v::stream_key masks{1, run, 3};
        m.draw_weights(v::stream_key{1, run, 0});
        const Eigen::MatrixXd x = m.sample_input(v::stream_key{1, run, 1}, masks);
        m.forward(x, masks, [](int, const Eigen::MatrixXd& y) { benchmark::DoNotOptimize(y.data()); });
        v::normal_sequence grng(v::stream_key{1, run, 2});
        v::sample_gradient(g, s.output_gradient, grng);
        m.backward(g, [](int, const Eigen::MatrixXd& y) { benchmark::DoNotOptimize(y.data()); });
        ++run;
    }
}

// A trainability map: 50 sigma_qk x 40 beta x 50 depths N = 4, 8, ..., 200 (10^5 specs) of
// a Pre-LN encoder (d_model 512, d_ff 2048, 8 heads, L 256, dropout 0.1, GeLU) with
// beta = 0.024, ..., 0.96, lambda^2 + beta^2 = 1, sigma_qk = 0.1, ..., 5, sigma_q = sigma_k = sigma_qk / sqrt(d_model) and the other weights
// 1/sqrt(fan_in). Per spec it keeps the gradient growth from the last layer to the first
// (input gradient variance / output gradient variance) and the final token correlation.
// OpenMP across specs, on the runtime's default number of threads; items = specs.
void sweep_sigma_qk_beta_depth(benchmark::State& state) {
    constexpr int n_qk = 50, n_beta = 40, n_depth = 50, total = n_qk * n_beta * n_depth;
    std::vector<double> growth(total), corr(total);
    for (auto _ : state) {
#pragma omp parallel for schedule(dynamic, 16)
        for (int i = 0; i < total; ++i) {
            const int iq = i % n_qk, ib = (i / n_qk) % n_beta, in = i / (n_qk * n_beta);
            sigprop::transformer_spec<double> s;
            s.layers = 4 * (in + 1);
            s.d_model = 512;
            s.d_ff = 2048;
            s.heads = 8;
            s.seq_len = 256;
            s.p_hidden = 0.1;
            s.p_attention = 0.1;
            s.beta = 0.024 * (ib + 1);
            s.lambda = std::sqrt(1 - s.beta * s.beta);
            const double w = 1 / std::sqrt(512.0), qk = 0.1 * (iq + 1) * w;
            s.sigmas.assign(std::size_t(s.layers), {qk, qk, w, w, w, w / 2});
            const auto t = sigprop::predict(s);
            growth[std::size_t(i)] = t.points.front().g.var / t.points.back().g.var;
            corr[std::size_t(i)] = t.points.back().x.corr;
        }
        benchmark::DoNotOptimize(growth.data());
        benchmark::DoNotOptimize(corr.data());
    }
    state.SetItemsProcessed(state.iterations() * total);
#ifdef _OPENMP
    state.counters["threads"] = omp_get_max_threads();
#endif
}

BENCHMARK(predict_small)->Arg(12)->Unit(benchmark::kMicrosecond);
BENCHMARK(model_mc_small)->Arg(12)->Unit(benchmark::kMicrosecond);
BENCHMARK(sweep_sigma_qk_beta_depth)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
