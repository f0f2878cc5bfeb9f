// Forward + backward of sigprop::gelu per call, through the public (validating) entry points.
#include "sigprop/components/gelu.hpp"
#include "support/forward_backward.hpp"

namespace {

// The input variance and correlation cycle over 8 and 64 values.
template <class T>
void gelu_forward_backward(benchmark::State& state, T mean) {
    sigprop::bench::forward_backward(state, sigprop::gelu<T>{}, sigprop::signal<T>{mean, T(1.3), T(-0.9)},
                                     sigprop::gradient<T>{T(0.8), T(0.4)}, [](sigprop::signal<T>& x, int i) {
                                         x.var = T(1.3) + T(i & 7) / T(64);
                                         x.corr = T(-0.9) + T(i & 63) / T(36);
                                     });
}

}  // namespace

BENCHMARK_CAPTURE(gelu_forward_backward, float_zero_mean, 0.0f);
BENCHMARK_CAPTURE(gelu_forward_backward, double_zero_mean, 0.0);
