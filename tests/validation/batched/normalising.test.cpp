// The batched softmax and LayerNorm experiments (batched/normalising.hpp, the code the
// CUDA backend runs apart from its softmax kernels) compiled with Thrust's OpenMP system:
// the same numbers as the Eigen models on the same streams, and the formulas within
// standard errors.
#include <cmath>
#include <cstdint>
#include <utility>

#include <doctest/doctest.h>

#include "sigprop/components/layer_norm.hpp"
#include "sigprop/components/softmax.hpp"
#include "sigprop/validation/batched/fold.hpp"
#include "sigprop/validation/batched/host_backend.hpp"
#include "sigprop/validation/batched/normalising.hpp"
#include "sigprop/validation/components/layer_norm.hpp"
#include "sigprop/validation/components/softmax.hpp"
#include "support/agreement.hpp"

using namespace sigprop;
namespace batched = sigprop::validation::batched;

namespace {

template <class Job>
Job with_streams(Job j, const validation::experiment_input& in, const validation::run_options& o) {
    j.m = {in.x.mean, in.x.var, in.x.corr, in.g.var, in.g.corr};
    j.seed = o.seed;
    j.experiment = o.experiment;
    j.sequences = o.sequences;
    return j;
}

template <class Job>
validation::measurement batched_measure(const Job& j, const validation::run_options& o) {
    batched::host_backend<double> be;
    batched::workspace<double> ws;
    return batched::fold(batched::run(be, j, ws), o.blocks);
}

batched::softmax_job softmax_of(int L, int rows) {
    batched::softmax_job j;
    j.L = L;
    j.rows = rows;
    return j;
}

batched::layer_norm_job layer_norm_of(int L, int d) {
    batched::layer_norm_job j;
    j.L = L;
    j.d = d;
    return j;
}

// Values to 1e-9 of the quantity's scale (only the summation order differs). Standard
// errors to 1e-6 relative, plus the same absolute floor: some quantities are exact by
// construction (LayerNorm's mean 0 and variance 1, the softmax's mean 1/L), so their
// standard errors are rounding noise, which differs with the summation order.
void check_same(const validation::measured_moments& a, const validation::measured_moments& b) {
    const double scale = std::abs(b.var.value);
    for (const auto& [x, y] : {std::pair{a.mean, b.mean}, std::pair{a.var, b.var}, std::pair{a.cov, b.cov}}) {
        INFO("batched " << x.value << " +- " << x.se << ", Eigen " << y.value << " +- " << y.se);
        CHECK(std::abs(x.value - y.value) <= 1e-9 * (std::abs(y.value) + scale));
        CHECK(std::abs(x.se - y.se) <= 1e-6 * y.se + 1e-9 * (std::abs(y.value) + scale));
    }
}

// LayerNorm's output mean is exactly 0 (every token's outputs sum to 0), so its standard
// error is rounding noise and the mean is checked as exact instead.
void check_formulas(const signal<double>& y, const gradient<double>& g, const validation::measurement& m,
                    bool exact_mean = false) {
    if (exact_mean) CHECK(std::abs(m.y.mean.value - y.mean) < 1e-12);
    else test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", g.var, m.g.var);
    test::check_agrees("g cov", g.corr * g.var, m.g.cov);
}

}  // namespace

TEST_CASE("batched softmax, layer_norm (Thrust on OpenMP) reproduce the Eigen models") {
    const validation::run_options o{77, 3, 10, 5};
    const validation::experiment_input in{{0.3, 1.4, 0.5}, {0.9, 0.2}, 6, 7};
    const validation::experiment_input neg{{-2, 0.8, -0.15}, {1.1, -0.1}, 6, 7};
    for (const auto& x : {in, neg}) {
        const auto s = batched_measure(with_streams(softmax_of(6, 7), x, o), o);
        const auto sb = validation::measure(softmax<double>{6}, x, o);
        check_same(s.y, sb.y);
        check_same(s.g, sb.g);
        const auto n = batched_measure(with_streams(layer_norm_of(6, 7), x, o), o);
        const auto nb = validation::measure(layer_norm<double>{7}, x, o);
        check_same(n.y, nb.y);
        check_same(n.g, nb.g);
    }
}

TEST_CASE("batched softmax, layer_norm (Thrust on OpenMP) agree with the formulas") {
    // Softmax: small L and a large logit variance, where only our form holds (as in
    // tests/components/softmax.test.cpp), 2000 rows per sequence.
    const validation::run_options so{99, 1, 64, 16};
    const validation::experiment_input sin{{0.7, 4.0, 0.5}, {1.5, 0.3}, 4, 2000};
    const softmax<double> sm{4};
    check_formulas(forward(sm, sin.x), backward(sm, sin.x, sin.g),
                   batched_measure(with_streams(softmax_of(4, 2000), sin, so), so));
    // LayerNorm: d = 8, r = 0.9, where the paper's form is off (as in
    // tests/components/layer_norm.test.cpp), with fewer sequences.
    const validation::run_options lo{11, 8, 20000, 20};
    const validation::experiment_input lin{{3.0, 2.5, 0.9}, {0.8, 0.6}, 6, 8};
    const layer_norm<double> ln{8};
    check_formulas(forward(ln, lin.x), backward(ln, lin.x, lin.g),
                   batched_measure(with_streams(layer_norm_of(6, 8), lin, lo), lo), true);
}
