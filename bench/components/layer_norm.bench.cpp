// Forward + backward of one LayerNorm prediction per iteration. The input correlation moves
// a little on every call so that nothing can be folded at compile time or hoisted out of
// the loop. The cost of our form depends on the path the 2F1 takes (docs/theory/layer_norm.md):
//   d = 768, r = 0.5   series at large c (the common transformer case);
//   d = 16,  r = 0.9   contiguous recurrence from the arcsin start (half-integer c);
//   d = 33,  r = 0.9   contiguous recurrence from the AGM start (integer c), longest chain;
//   d = 8,   r = 0.45  series at small c and z <= 1/2, its slowest case.
#include <benchmark/benchmark.h>

#include "sigprop/components/layer_norm.hpp"
#include "support/forward_backward.hpp"

namespace {

template <class T>
void layer_norm_forward_backward(benchmark::State& state) {
    const T r0 = T(state.range(1)) / T(100);
    sigprop::bench::forward_backward(state, sigprop::layer_norm<T>{int(state.range(0))},
                                     sigprop::signal<T>{T(0.5), T(2), r0}, sigprop::gradient<T>{T(1), T(0.3)},
                                     [r0](sigprop::signal<T>& x, int i) { x.corr = r0 + T(1e-4) * T(i & 15); });
}

// The paper's Table 1 forms: a few multiplications.
template <class T>
void layer_norm_forward_backward_paper(benchmark::State& state) {
    sigprop::bench::forward_backward(state, sigprop::layer_norm<T>{768, sigprop::form::paper},
                                     sigprop::signal<T>{T(0.5), T(2), T(0.5)}, sigprop::gradient<T>{T(1), T(0.3)},
                                     sigprop::bench::creep_var<T>);
}

void cases(benchmark::internal::Benchmark* b) {
    b->ArgNames({"d", "r%"});
    b->Args({768, 50});
    b->Args({16, 90});
    b->Args({33, 90});
    b->Args({8, 45});
}

BENCHMARK(layer_norm_forward_backward<float>)->Apply(cases);
BENCHMARK(layer_norm_forward_backward<double>)->Apply(cases);
BENCHMARK(layer_norm_forward_backward_paper<float>);
BENCHMARK(layer_norm_forward_backward_paper<double>);

}  // namespace
