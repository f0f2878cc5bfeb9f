// The batched linear, ReLU, GeLU and dropout experiments (batched/dense.hpp, the code the
// CUDA backend runs) compiled with Thrust's OpenMP system: the same numbers as the Eigen
// models on the same streams, and the formulas within standard errors.
#include <cmath>
#include <cstdint>

#include <doctest/doctest.h>

#include "sigprop/components/dropout.hpp"
#include "sigprop/components/gelu.hpp"
#include "sigprop/components/linear.hpp"
#include "sigprop/components/relu.hpp"
#include "sigprop/validation/batched/dense.hpp"
#include "sigprop/validation/batched/fold.hpp"
#include "sigprop/validation/batched/host_backend.hpp"
#include "sigprop/validation/components/dropout.hpp"
#include "sigprop/validation/components/gelu.hpp"
#include "sigprop/validation/components/linear.hpp"
#include "sigprop/validation/components/relu.hpp"
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

batched::pointwise_job pointwise(batched::pointwise_kind k, int L, int width, double p) {
    batched::pointwise_job j;
    j.kind = k;
    j.L = L;
    j.width = width;
    j.p = p;
    return j;
}

void check_same(const validation::measured_moments& a, const validation::measured_moments& b) {
    for (const auto& [x, y] : {std::pair{a.mean, b.mean}, std::pair{a.var, b.var}, std::pair{a.cov, b.cov}}) {
        INFO("batched " << x.value << " +- " << x.se << ", Eigen " << y.value << " +- " << y.se);
        CHECK(std::abs(x.value - y.value) <= 1e-9 * (std::abs(y.value) + std::abs(a.var.value)));
        CHECK(std::abs(x.se - y.se) <= 1e-6 * (y.se + 1e-300));
    }
}

void check_formulas(const signal<double>& y, const gradient<double>& g, const validation::measurement& m) {
    test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    test::check_agrees("g var", g.var, m.g.var);
    test::check_agrees("g cov", g.corr * g.var, m.g.cov);
}

}  // namespace

TEST_CASE("batched linear, relu, gelu, dropout (Thrust on OpenMP) reproduce the Eigen models") {
    const validation::run_options o{91, 4, 10, 5};
    const validation::experiment_input in{{0.3, 1.4, 0.5}, {0.9, 0.2}, 6, 7};
    const validation::experiment_input neg{{0, 0.8, -0.15}, {1.1, -0.1}, 6, 7};
    for (const auto& x : {in, neg}) {
        batched::linear_job lj;
        lj.L = 6;
        lj.d_in = 7;
        lj.d_out = 5;
        lj.sigma_w = 0.3;
        const auto a = batched_measure(with_streams(lj, x, o), o);
        const auto b = validation::measure(linear<double>{7, 5, 0.3}, x, o);
        check_same(a.y, b.y);
        check_same(a.g, b.g);
        const auto r = batched_measure(with_streams(pointwise(batched::pointwise_kind::relu, 6, 7, 0), x, o), o);
        const auto rb = validation::measure(relu<double>{}, x, o);
        check_same(r.y, rb.y);
        check_same(r.g_halves[0], rb.g_halves[0]);
        const auto e = batched_measure(with_streams(pointwise(batched::pointwise_kind::gelu, 6, 7, 0), x, o), o);
        const auto eb = validation::measure(gelu<double>{}, x, o);
        check_same(e.y, eb.y);
        check_same(e.g, eb.g);
        const auto d = batched_measure(with_streams(pointwise(batched::pointwise_kind::dropout, 6, 7, 0.4), x, o), o);
        const auto db = validation::measure(dropout<double>{0.4}, x, o);
        check_same(d.y, db.y);
        check_same(d.g, db.g);
    }
}

TEST_CASE("batched linear, relu, gelu, dropout (Thrust on OpenMP) agree with the formulas") {
    const validation::run_options o{5150, 8, 400, 20};
    const validation::experiment_input in{{0, 1.5, 0.4}, {0.7, 0.3}, 8, 6};
    batched::linear_job lj;
    lj.L = 8;
    lj.d_in = 6;
    lj.d_out = 4;
    lj.sigma_w = 0.35;
    const linear<double> lin{6, 4, 0.35};
    check_formulas(forward(lin, in.x), backward(lin, in.x, in.g), batched_measure(with_streams(lj, in, o), o));
    const relu<double> re{};
    check_formulas(forward(re, in.x), backward(re, in.x, in.g),
                   batched_measure(with_streams(pointwise(batched::pointwise_kind::relu, 8, 6, 0), in, o), o));
    const gelu<double> ge{};
    check_formulas(forward(ge, in.x), backward(ge, in.x, in.g),
                   batched_measure(with_streams(pointwise(batched::pointwise_kind::gelu, 8, 6, 0), in, o), o));
    const dropout<double> dr{0.3};
    const signal<double> shifted{0.5, 1.5, 0.4};
    const validation::experiment_input din{shifted, in.g, 8, 6};
    check_formulas(forward(dr, shifted), backward(dr, shifted, in.g),
                   batched_measure(with_streams(pointwise(batched::pointwise_kind::dropout, 8, 6, 0.3), din, o), o));
}
