// Cost of one forward + backward moment evaluation of sigprop::attention.
#include <benchmark/benchmark.h>

#include "sigprop/components/attention.hpp"
#include "support/forward_backward.hpp"

namespace {

// The input correlation flips by 1e-6 on every call so that nothing can be hoisted.
template <class T>
void flip_corr(sigprop::signal<T>& x, int i) {
    x.corr += (i & 1) ? T(-1e-6) : T(1e-6);
}

template <class T>
void attention_forward_backward(benchmark::State& state) {
    const auto f = static_cast<sigprop::form>(state.range(0));
    sigprop::bench::forward_backward(state, sigprop::attention<T>{512, 64, 1024, T(0.02), T(0.02), T(0.04), T(0.1), f},
                                     sigprop::signal<T>{T(0), T(1), T(0.3)}, sigprop::gradient<T>{T(1), T(0.2)},
                                     flip_corr<T>);
}

// The noexcept formulas alone, without the argument checks of the public entry points
// (what the GPU validator calls after checking on the host).
template <class T>
void attention_formulas(benchmark::State& state) {
    const auto f = static_cast<sigprop::form>(state.range(0));
    sigprop::attention<T> c{512, 64, 1024, T(0.02), T(0.02), T(0.04), T(0.1), f};
    sigprop::signal<T> x{T(0), T(1), T(0.3)};
    const sigprop::gradient<T> g{T(1), T(0.2)};
    int i = 0;
    for (auto _ : state) {
        flip_corr(x, i++);
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
