// The yardstick every component benchmark is compared with: one call of std::exp.
// Each iteration reads the next input from a small table of varied values, so the call can
// be neither hoisted out of the loop nor folded into a constant; the loop costs the same in
// the component benchmarks, which follow the same pattern.
#include <array>
#include <cmath>
#include <cstddef>

#include <benchmark/benchmark.h>

namespace {

template <class T>
std::array<T, 64> exp_inputs() {
    std::array<T, 64> in{};
    for (std::size_t i = 0; i < in.size(); ++i) in[i] = T(-4) + T(8) * T(i) / T(in.size());
    return in;
}

template <class T>
void BM_std_exp(benchmark::State& state) {
    const auto in = exp_inputs<T>();
    std::size_t i = 0;
    for (auto _ : state) {
        T x = in[i++ & (in.size() - 1)];
        benchmark::DoNotOptimize(x);  // the compiler may not assume the value
        T y = std::exp(x);
        benchmark::DoNotOptimize(y);
    }
}

}  // namespace

BENCHMARK_TEMPLATE(BM_std_exp, float);
BENCHMARK_TEMPLATE(BM_std_exp, double);
BENCHMARK_TEMPLATE(BM_std_exp, long double);
