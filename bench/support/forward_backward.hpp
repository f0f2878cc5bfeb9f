#pragma once
// The loop every component benchmark runs: one forward and one backward prediction per
// iteration through the public (validating) entry points. `vary(x, i)` moves the input a
// little on iteration i, so that the compiler can neither fold the call into a constant
// nor hoist it out of the loop.
#include <benchmark/benchmark.h>

#include "sigprop/core/moments.hpp"

namespace sigprop::bench {

template <class C, class T, class Vary>
void forward_backward(benchmark::State& state, const C& c, signal<T> x, const gradient<T>& g, Vary vary) {
    int i = 0;
    for (auto _ : state) {
        vary(x, i++);
        const auto y = forward(c, x);
        const auto dx = backward(c, x, g);
        benchmark::DoNotOptimize(y);
        benchmark::DoNotOptimize(dx);
    }
}

/// The usual variation: the variance creeps up by 1e-6 per call.
template <class T>
void creep_var(signal<T>& x, int) {
    x.var += T(1e-6);
}

}  // namespace sigprop::bench
