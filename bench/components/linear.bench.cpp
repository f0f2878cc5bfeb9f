// Forward + backward of one linear-layer prediction per iteration.
#include "sigprop/components/linear.hpp"
#include "support/forward_backward.hpp"

namespace {

template <class T>
void linear_forward_backward(benchmark::State& state) {
    sigprop::bench::forward_backward(state, sigprop::linear<T>{768, 3072, T(0.02)},
                                     sigprop::signal<T>{T(0.5), T(1), T(0.2)},
                                     sigprop::gradient<T>{T(1), T(0.3)}, sigprop::bench::creep_var<T>);
}

BENCHMARK(linear_forward_backward<float>);
BENCHMARK(linear_forward_backward<double>);

}  // namespace
