// Cost of one forward + backward moment evaluation of sigprop::multi_head_attention,
// without the mask (O(1)) and causal (O(L): one pass over the rows).
#include <benchmark/benchmark.h>

#include "sigprop/components/multi_head_attention.hpp"
#include "support/forward_backward.hpp"

namespace {

template <class T>
void multi_head_attention_forward_backward(benchmark::State& state) {
    const bool causal = state.range(0) != 0;
    const int L = int(state.range(1));
    sigprop::bench::forward_backward(
        state, sigprop::multi_head_attention<T>{1024, 16, L, T(0.02), T(0.02), T(0.03), T(0.03), T(0.1), causal},
        sigprop::signal<T>{T(0), T(1), T(0.3)}, sigprop::gradient<T>{T(1), T(0.2)},
        [](sigprop::signal<T>& x, int i) { x.corr += (i & 1) ? T(-1e-6) : T(1e-6); });
}

}  // namespace

BENCHMARK_TEMPLATE(multi_head_attention_forward_backward, float)->Args({0, 128})->Args({1, 128})->Args({1, 2048});
BENCHMARK_TEMPLATE(multi_head_attention_forward_backward, double)->Args({0, 128})->Args({1, 128})->Args({1, 2048});
