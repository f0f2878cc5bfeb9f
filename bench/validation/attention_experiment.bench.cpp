// One Monte-Carlo attention experiment against the bare Eigen GEMMs it contains: the
// difference is the validator's overhead (sampling, softmax, dropout masks, estimator).
#include <benchmark/benchmark.h>

#include <Eigen/Core>

#include "sigprop/validation/components/attention.hpp"

namespace {

using sigprop::attention;
namespace sv = sigprop::validation;

constexpr int sequences = 4;

// The paper grid's shapes: (L, d_in, d_head), attention dropout p.
void shapes(benchmark::internal::Benchmark* b) {
    for (int p100 : {0, 33}) {
        b->Args({300, 100, 64, p100});
        b->Args({1000, 316, 128, p100});
    }
    b->Unit(benchmark::kMillisecond);
}

void attention_experiment(benchmark::State& state) {
    const int L = int(state.range(0)), d_in = int(state.range(1)), d_head = int(state.range(2));
    const double s = 1 / std::sqrt(double(d_in));
    const attention<double> c{d_in, d_head, L, 0.5 * s, 0.5 * s, s, double(state.range(3)) / 100};
    sv::experiment_input in;
    in.x = {0, 1, 1.0 / 3};
    in.g = {1, 1.0 / 3};
    std::uint32_t id = 0;
    for (auto _ : state) {
        const auto m = sv::measure(c, in, sv::run_options{1, id++, sequences, 2});
        benchmark::DoNotOptimize(m);
    }
    state.counters["sequences"] = sequences;
}

// The GEMMs of the same experiment on preallocated matrices: forward (3 projections,
// scores, output) and backward (dV, dP, dQ, dK and the 3 input-gradient products).
void attention_gemms_only(benchmark::State& state) {
    const int L = int(state.range(0)), d_in = int(state.range(1)), d_head = int(state.range(2));
    Eigen::MatrixXd x = Eigen::MatrixXd::Random(L, d_in), g = Eigen::MatrixXd::Random(L, d_head);
    Eigen::MatrixXd wq = Eigen::MatrixXd::Random(d_in, d_head), wk = wq, wv = wq;
    Eigen::MatrixXd q(L, d_head), k(L, d_head), v(L, d_head), a(L, L), y(L, d_head), dv(L, d_head),
        dp(L, L), dq(L, d_head), dk(L, d_head), dx(L, d_in);
    for (auto _ : state) {
        for (int s = 0; s < sequences; ++s) {
            q.noalias() = x * wq;
            k.noalias() = x * wk;
            v.noalias() = x * wv;
            a.noalias() = k * q.transpose();
            y.noalias() = a.transpose() * v;
            dv.noalias() = a * g;
            dp.noalias() = v * g.transpose();
            dq.noalias() = dp.transpose() * k;
            dk.noalias() = dp * q;
            dx.noalias() = dq * wq.transpose();
            dx.noalias() += dk * wk.transpose();
            dx.noalias() += dv * wv.transpose();
            benchmark::DoNotOptimize(dx.data());
            benchmark::ClobberMemory();
        }
    }
    state.counters["sequences"] = sequences;
}

}  // namespace

BENCHMARK(attention_experiment)->Apply(shapes);
BENCHMARK(attention_gemms_only)->Apply(shapes);
