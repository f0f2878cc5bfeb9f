// Cost of one forward + backward moment evaluation of sigprop::attention.
#include <benchmark/benchmark.h>

#include "sigprop/components/attention.hpp"

namespace {

template <class T>
void attention_forward_backward(benchmark::State& state) {
    const auto f = static_cast<sigprop::form>(state.range(0));
    sigprop::attention<T> c{512, 64, 1024, T(0.02), T(0.02), T(0.04), T(0.1), f};
    sigprop::signal<T> x{T(0), T(1), T(0.3)};
    const sigprop::gradient<T> g{T(1), T(0.2)};
    T step = T(1e-6);
    for (auto _ : state) {
        x.corr += step;  // vary the input so that nothing can be hoisted out of the loop
        step = -step;
        const auto y = sigprop::forward(c, x);
        const auto b = sigprop::backward(c, x, g);
        benchmark::DoNotOptimize(y);
        benchmark::DoNotOptimize(b);
    }
}

// The noexcept formulas alone, without the argument checks of the public entry points
// (what the GPU validator calls after checking on the host).
template <class T>
void attention_formulas(benchmark::State& state) {
    const auto f = static_cast<sigprop::form>(state.range(0));
    sigprop::attention<T> c{512, 64, 1024, T(0.02), T(0.02), T(0.04), T(0.1), f};
    sigprop::signal<T> x{T(0), T(1), T(0.3)};
    const sigprop::gradient<T> g{T(1), T(0.2)};
    T step = T(1e-6);
    for (auto _ : state) {
        x.corr += step;
        step = -step;
        const auto y = sigprop::detail::forward_impl(c, x);
        const auto b = sigprop::detail::backward_impl(c, x, g);
        benchmark::DoNotOptimize(y);
        benchmark::DoNotOptimize(b);
    }
}

}  // namespace

BENCHMARK_TEMPLATE(attention_formulas, float)->Arg(int(sigprop::form::best))->Arg(int(sigprop::form::paper));
BENCHMARK_TEMPLATE(attention_formulas, double)->Arg(int(sigprop::form::best))->Arg(int(sigprop::form::paper));
BENCHMARK_TEMPLATE(attention_forward_backward, float)->Arg(int(sigprop::form::best))->Arg(int(sigprop::form::paper));
BENCHMARK_TEMPLATE(attention_forward_backward, double)->Arg(int(sigprop::form::best))->Arg(int(sigprop::form::paper));
