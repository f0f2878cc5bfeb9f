// Forward + backward of sigprop::gelu per call, through the public (validating) entry points.
#include <benchmark/benchmark.h>

#include "sigprop/components/gelu.hpp"

namespace {

// The input correlation cycles over 64 values so that nothing can be constant-folded.
template <class T>
void gelu_forward_backward(benchmark::State& state, T mean) {
    const sigprop::gelu<T> c{};
    int i = 0;
    for (auto _ : state) {
        const sigprop::signal<T> x{mean, T(1.3) + T(i & 7) / T(64), T(-0.9) + T(i & 63) / T(36)};
        const auto y = forward(c, x);
        const auto g = backward(c, x, sigprop::gradient<T>{T(0.8), T(0.4)});
        benchmark::DoNotOptimize(y);
        benchmark::DoNotOptimize(g);
        ++i;
    }
}

}  // namespace

BENCHMARK_CAPTURE(gelu_forward_backward, float_zero_mean, 0.0f);
BENCHMARK_CAPTURE(gelu_forward_backward, double_zero_mean, 0.0);
