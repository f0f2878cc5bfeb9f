// Forward + backward of sigprop::relu per call, through the public (validating) entry points.
#include "sigprop/components/relu.hpp"
#include "support/forward_backward.hpp"

namespace {

// The input variance and correlation cycle over 8 and 64 values.
template <class T>
void relu_forward_backward(benchmark::State& state, T mean) {
    sigprop::bench::forward_backward(state, sigprop::relu<T>{}, sigprop::signal<T>{mean, T(1.3), T(-0.9)},
                                     sigprop::gradient<T>{T(0.8), T(0.4)}, [](sigprop::signal<T>& x, int i) {
                                         x.var = T(1.3) + T(i & 7) / T(64);
                                         x.corr = T(-0.9) + T(i & 63) / T(36);
                                     });
}

}  // namespace

BENCHMARK_CAPTURE(relu_forward_backward, float_zero_mean, 0.0f);
BENCHMARK_CAPTURE(relu_forward_backward, double_zero_mean, 0.0);
// A nonzero mean needs Phi, the bivariate normal orthant (Owen's T) and, beyond m = -2,
// long double arithmetic.
BENCHMARK_CAPTURE(relu_forward_backward, float_mean_0_5, 0.5f);
BENCHMARK_CAPTURE(relu_forward_backward, double_mean_0_5, 0.5);
BENCHMARK_CAPTURE(relu_forward_backward, double_mean_minus_3, -3.0);
