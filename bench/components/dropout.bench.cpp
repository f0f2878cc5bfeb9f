// Forward + backward of one dropout prediction per iteration. The input moves a little on
// every call so that nothing can be folded at compile time or hoisted out of the loop.
#include <benchmark/benchmark.h>

#include "sigprop/components/dropout.hpp"
#include "support/forward_backward.hpp"

namespace {

template <class T>
void dropout_forward_backward(benchmark::State& state) {
    sigprop::bench::forward_backward(state, sigprop::dropout<T>{T(0.1)}, sigprop::signal<T>{T(0.5), T(1), T(0.2)},
                                     sigprop::gradient<T>{T(1), T(0.3)}, sigprop::bench::creep_var<T>);
}

// The noexcept formulas alone, without the public entry points' input checks: what the
// GPU validator and the model-level code that checked its inputs once pay per call.
template <class T>
void dropout_forward_backward_unchecked(benchmark::State& state) {
    const sigprop::dropout<T> c{T(0.1)};
    sigprop::signal<T> x{T(0.5), T(1), T(0.2)};
    const sigprop::gradient<T> g{T(1), T(0.3)};
    for (auto _ : state) {
        x.var += T(1e-6);
        const auto y = sigprop::detail::forward_impl(c, x);
        const auto dx = sigprop::detail::backward_impl(c, x, g);
        benchmark::DoNotOptimize(y);
        benchmark::DoNotOptimize(dx);
    }
}

BENCHMARK(dropout_forward_backward<float>);
BENCHMARK(dropout_forward_backward<double>);
BENCHMARK(dropout_forward_backward_unchecked<float>);
BENCHMARK(dropout_forward_backward_unchecked<double>);

}  // namespace
