// The batched attention experiment (batched/attention.hpp, the code the CUDA backend runs)
// compiled with Thrust's OpenMP system: it must reproduce the Eigen model on the same
// streams up to rounding, and agree with the formulas within standard errors.
#include <cmath>
#include <cstdint>

#include <doctest/doctest.h>

#include "sigprop/components/attention.hpp"
#include "sigprop/validation/batched/attention.hpp"
#include "sigprop/validation/batched/fold.hpp"
#include "sigprop/validation/batched/host_backend.hpp"
#include "sigprop/validation/components/attention.hpp"
#include "support/agreement.hpp"

using namespace sigprop;
namespace batched = sigprop::validation::batched;

namespace {

batched::attention_job job_of(const attention<double>& c, const validation::experiment_input& in,
                              const validation::run_options& o) {
    batched::attention_job j;
    j.L = c.L;
    j.d_in = c.d_in;
    j.d_head = c.d_head;
    j.sigma_q = c.sigma_q;
    j.sigma_k = c.sigma_k;
    j.sigma_v = c.sigma_v;
    j.p = c.p;
    j.m = {in.x.mean, in.x.var, in.x.corr, in.g.var, in.g.corr};
    j.seed = o.seed;
    j.experiment = o.experiment;
    j.sequences = o.sequences;
    return j;
}

validation::measurement batched_measure(const attention<double>& c, const validation::experiment_input& in,
                                        const validation::run_options& o) {
    batched::host_backend<double> be;
    batched::workspace<double> ws;
    return batched::fold(batched::run(be, job_of(c, in, o), ws), o.blocks);
}

void check_same(const validation::measured_moments& a, const validation::measured_moments& b) {
    // Only the order of floating-point operations differs (GEMM blocking, sums).
    for (const auto& [x, y] : {std::pair{a.mean, b.mean}, std::pair{a.var, b.var}, std::pair{a.cov, b.cov}}) {
        INFO("batched " << x.value << " +- " << x.se << ", Eigen " << y.value << " +- " << y.se);
        CHECK(std::abs(x.value - y.value) <= 1e-9 * (std::abs(y.value) + std::abs(a.var.value)));
        CHECK(std::abs(x.se - y.se) <= 1e-6 * (y.se + 1e-300));
    }
}

}  // namespace

TEST_CASE("batched attention (Thrust on OpenMP) reproduces the Eigen model on the same streams") {
    struct cfg {
        attention<double> c;
        validation::experiment_input in;
    };
    const cfg cases[] = {
        {{12, 5, 7, 0.3, 0.2, 0.25, 0.0}, {{0, 1, 0.4}, {1.5, 0.3}, 0, 0}},
        {{9, 4, 6, 0.5, 0.4, 0.3, 0.3}, {{0.2, 0.7, 0.1}, {0.8, 0.6}, 0, 0}},
        // Negative correlations take the sampler's other branch.
        {{8, 3, 5, 0.4, 0.4, 0.3, 0.5}, {{0, 1.2, -0.2}, {1, -0.1}, 0, 0}},
    };
    for (const auto& [c, in] : cases) {
        const validation::run_options o{77, 5, 12, 4};
        const auto a = batched_measure(c, in, o);
        const auto b = validation::measure(c, in, o);
        check_same(a.y, b.y);
        check_same(a.g, b.g);
        check_same(a.y_halves[0], b.y_halves[0]);
        check_same(a.g_halves[1], b.g_halves[1]);
    }
}

TEST_CASE("batched attention (Thrust on OpenMP) agrees with the formulas within standard errors") {
    const double s = 1 / std::sqrt(24.0);
    const attention<double> c{24, 8, 16, 0.8 * s, 0.8 * s, s, 0.2};
    const validation::experiment_input in{{0, 1, 0.5}, {1.2, 0.4}, 0, 0};
    const auto m = batched_measure(c, in, {2024, 3, 600, 20});
    const auto y = forward(c, in.x);
    const auto g = backward(c, in.x, in.g);
    test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", g.var, m.g.var);
    test::check_agrees("g cov", g.corr * g.var, m.g.cov);
}

TEST_CASE("batched attention rejects what simulate rejects") {
    batched::host_backend<double> be;
    batched::workspace<double> ws;
    batched::attention_job j;
    j.L = 1;
    CHECK_THROWS_AS(batched::run(be, j, ws), std::invalid_argument);
    j.L = 4;
    j.m.x_corr = -0.5;  // below -1/(L-1)
    CHECK_THROWS_WITH_AS(batched::run(be, j, ws), "sample_equicorrelated: corr below -1/(L-1)", std::invalid_argument);
}
