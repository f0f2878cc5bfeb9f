// simulate(): reproducible bit for bit for a fixed seed, different for another seed, and it
// feeds the model exactly the requested input and gradient moments.
#include <cstring>
#include <stdexcept>

#include <doctest/doctest.h>

#include <Eigen/Core>

#include "sigprop/validation/components/linear.hpp"
#include "sigprop/validation/experiment.hpp"

using namespace sigprop::validation;

namespace {

// Bitwise equality of two measurements' main estimates (NaN-safe, -0 != +0).
bool same_bits(const measured_moments& a, const measured_moments& b) {
    const measured* pa[] = {&a.mean, &a.var, &a.cov, &a.corr};
    const measured* pb[] = {&b.mean, &b.var, &b.cov, &b.corr};
    for (int i = 0; i < 4; ++i)
        if (std::memcmp(&pa[i]->value, &pb[i]->value, sizeof(double)) != 0 ||
            std::memcmp(&pa[i]->se, &pb[i]->se, sizeof(double)) != 0)
            return false;
    return true;
}

// y = x, dL/dx = g: the measurement is the sampler's own output.
struct identity_model {
    int forwards = 0, backwards = 0;
    Eigen::MatrixXd forward(sequence_streams&, const Eigen::MatrixXd& x) {
        ++forwards;
        return x;
    }
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) {
        ++backwards;
        return g;
    }
};

}  // namespace

TEST_CASE("simulate: the same seed gives the same measurement, bit for bit") {
    const sigprop::linear<double> c{24, 16, 0.2};
    experiment_input in;
    in.x = {0.3, 1.2, 0.5};
    in.g = {0.7, 0.2};
    in.tokens = 6;
    const run_options o{424242, 3, 40, 8};
    const auto a = measure(c, in, o);
    const auto b = measure(c, in, o);
    CHECK(same_bits(a.y, b.y));
    CHECK(same_bits(a.g, b.g));

    run_options other_seed = o, other_experiment = o;
    other_seed.seed += 1;
    other_experiment.experiment += 1;
    CHECK_FALSE(same_bits(measure(c, in, other_seed).y, a.y));
    CHECK_FALSE(same_bits(measure(c, in, other_experiment).y, a.y));
}

TEST_CASE("simulate: an identity model measures the requested moments") {
    identity_model model;
    experiment_input in;
    in.x = {-0.4, 2.0, 0.3};
    in.g = {0.5, -0.1};
    in.tokens = 5;
    in.width = 64;
    const run_options o{7, 0, 100, 10};
    const auto m = simulate(model, in, o);
    CHECK(model.forwards == 100);
    CHECK(model.backwards == 100);
    auto within = [](double requested, const measured& q) {
        return std::abs(q.value - requested) <= 5 * q.se;
    };
    CHECK(within(in.x.mean, m.y.mean));
    CHECK(within(in.x.var, m.y.var));
    CHECK(within(in.x.corr, m.y.corr));
    CHECK(within(0.0, m.g.mean));
    CHECK(within(in.g.var, m.g.var));
    CHECK(within(in.g.corr, m.g.corr));
}

TEST_CASE("simulate: streams differ between sequences and roles") {
    const run_options o{11, 2, 8, 4};
    auto first = [](normal_sequence s) { return s.next(); };
    const auto s0 = streams_for(o, 0), s1 = streams_for(o, 1);
    CHECK(first(s0.weights) != first(s1.weights));
    CHECK(first(s0.weights) != first(s0.input));
    CHECK(first(s0.input) != first(s0.grad));
    CHECK(s0.masks.key().stream != s1.masks.key().stream);
}

TEST_CASE("simulate: bad requests are refused, more blocks than sequences are clamped") {
    identity_model model;
    experiment_input in;
    in.tokens = 3;
    in.width = 4;
    CHECK_THROWS_AS(simulate(model, experiment_input{{}, {}, 1, 4}, run_options{}), std::invalid_argument);
    CHECK_THROWS_AS(simulate(model, experiment_input{{}, {}, 3, 0}, run_options{}), std::invalid_argument);
    CHECK_THROWS_AS(simulate(model, in, run_options{1, 0, 1, 16}), std::invalid_argument);
    CHECK_THROWS_AS(simulate(model, in, run_options{1, 0, 8, 1}), std::invalid_argument);
    CHECK_NOTHROW(simulate(model, in, run_options{1, 0, 3, 16}));  // 3 blocks of 1 sequence
}
