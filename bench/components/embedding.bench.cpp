// The embedding's predictions per call: forward + backward of BERT's three tables (the
// checked public entry points), the weight-gradient norm of one table, and the Zipf
// same-row probability (two Euler-Maclaurin harmonic numbers). Inputs move a little on
// every call so that nothing can be folded at compile time or hoisted out of the loop.
#include <cstdint>

#include <benchmark/benchmark.h>

#include "sigprop/components/embedding.hpp"

namespace {

template <class T>
void embedding_forward_backward(benchmark::State& state) {
    auto e = sigprop::bert_embedding<T>(T(0.1));
    sigprop::gradient<T> g{T(1), T(0.3)};
    for (auto _ : state) {
        e.tables[0].sigma += T(1e-7);
        g.var += T(1e-6);
        const auto y = sigprop::forward(e);
        const auto dy = sigprop::backward(e, g);
        benchmark::DoNotOptimize(y);
        benchmark::DoNotOptimize(dy);
    }
}

template <class T>
void embedding_weight_grad_sq_norm(benchmark::State& state) {
    const auto e = sigprop::bert_embedding<T>(T(0.1));
    sigprop::gradient<T> g{T(1), T(0.3)};
    for (auto _ : state) {
        g.var += T(1e-6);
        benchmark::DoNotOptimize(sigprop::weight_grad_sq_norm(e, g, 512, 768, 0));
    }
}

template <class T>
void embedding_same_row_zipf(benchmark::State& state) {
    T a = T(1.07);
    std::uint64_t vocab = 30522;
    for (auto _ : state) {
        a += T(1e-7);
        ++vocab;
        benchmark::DoNotOptimize(sigprop::same_row_probability_zipf(vocab, a));
    }
}

BENCHMARK(embedding_forward_backward<float>);
BENCHMARK(embedding_forward_backward<double>);
BENCHMARK(embedding_weight_grad_sq_norm<float>);
BENCHMARK(embedding_weight_grad_sq_norm<double>);
BENCHMARK(embedding_same_row_zipf<float>);
BENCHMARK(embedding_same_row_zipf<double>);

}  // namespace
