// Forward + backward of one linear-layer prediction per iteration; the input moves a little
// on every call so that nothing can be folded at compile time or hoisted out of the loop.
#include <benchmark/benchmark.h>

#include "sigprop/components/linear.hpp"

namespace {

template <class T>
void linear_forward_backward(benchmark::State& state) {
    const sigprop::linear<T> c{768, 3072, T(0.02)};
    sigprop::signal<T> x{T(0.5), T(1), T(0.2)};
    const sigprop::gradient<T> g{T(1), T(0.3)};
    for (auto _ : state) {
        x.var += T(1e-6);
        const auto y = sigprop::forward(c, x);
        const auto dx = sigprop::backward(c, x, g);
        benchmark::DoNotOptimize(y);
        benchmark::DoNotOptimize(dx);
    }
}

BENCHMARK(linear_forward_backward<float>);
BENCHMARK(linear_forward_backward<double>);

}  // namespace
