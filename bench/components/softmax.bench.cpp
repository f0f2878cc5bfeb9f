// Forward + backward of sigprop::softmax per call (best form: the quadrature; paper form
// for comparison). Inputs vary slightly per iteration so nothing is constant-folded.
#include <benchmark/benchmark.h>

#include "sigprop/components/softmax.hpp"

namespace {

template <class T>
void softmax_forward_backward(benchmark::State& state) {
    const sigprop::softmax<T> c{int(state.range(0)), sigprop::form(state.range(2))};
    const T s2 = T(state.range(1)) / T(100);
    T jitter = 0;
    for (auto _ : state) {
        const sigprop::signal<T> x{T(0), s2 + jitter, T(0)};
        const auto y = sigprop::forward(c, x);
        const auto g = sigprop::backward(c, x, sigprop::gradient<T>{T(1), T(0.1)});
        benchmark::DoNotOptimize(y);
        benchmark::DoNotOptimize(g);
        jitter = jitter > T(1e-3) ? T(0) : jitter + T(1e-6);
    }
}

// Arguments: L, s2 in hundredths, form (0 best, 1 paper). The best form takes the large-L
// expansion at (L, s2) = (300, 0.01), (1e4, 0.01), (1e6, 0.01), (1e6, 1) and the quadrature
// elsewhere (s2 = 4 with the jitter is its sigma > 2 branch).
void args(benchmark::internal::Benchmark* b) {
    for (int form : {0, 1})
        for (int L : {2, 16, 300, 10000, 1000000})
            for (int s : {1, 100, 400}) b->Args({L, s, form});
}

}  // namespace

BENCHMARK_TEMPLATE(softmax_forward_backward, float)->Apply(args);
BENCHMARK_TEMPLATE(softmax_forward_backward, double)->Apply(args);
