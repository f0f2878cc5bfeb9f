// The equicorrelated sampler: requested mean, variance and token correlation are what the
// samples have, within their standard errors, for positive, zero and negative
// correlations down to the least an equicorrelated law allows, -1/(L - 1).
#include <cmath>
#include <stdexcept>

#include <doctest/doctest.h>

#include <Eigen/Core>

#include "sigprop/validation/estimator.hpp"
#include "sigprop/validation/sampler.hpp"

using namespace sigprop::validation;

namespace {

constexpr int k_tokens = 8;
constexpr int k_blocks = 20;
constexpr int k_columns = 250;  // per block: 20 x 250 x 8 = 40000 samples

/// Samples k_blocks independent matrices and measures them.
measured_moments measure_sampler(double mean, double var, double corr, std::uint32_t stream) {
    moment_accumulator acc(k_tokens, k_blocks);
    normal_sequence rng{stream_key{2024, 17, stream}};
    Eigen::MatrixXd x(k_tokens, k_columns);
    for (int b = 0; b < k_blocks; ++b) {
        sample_equicorrelated(x, mean, var, corr, rng);
        acc.add(x, b);
    }
    return acc.result();
}

void check_within(const char* what, double requested, const measured& m) {
    INFO(what << ": requested " << requested << ", sampled " << m.value << " +- " << m.se);
    CHECK(std::abs(m.value - requested) <= 5 * m.se + 1e-12 * (1 + std::abs(requested)));
}

}  // namespace

TEST_CASE("sample_equicorrelated: requested moments within standard errors") {
    const double mean = 0.7, var = 2.5;
    const double least = -1.0 / (k_tokens - 1);
    std::uint32_t stream = 0;
    for (double corr : {0.95, 0.6, 0.2, 0.0, -0.05, -0.1, least}) {
        CAPTURE(corr);
        const auto m = measure_sampler(mean, var, corr, stream++);
        check_within("mean", mean, m.mean);
        check_within("var", var, m.var);
        check_within("cov", corr * var, m.cov);
        check_within("corr", corr, m.corr);
        CHECK(m.var.se > 0);
        CHECK(m.corr.se > 0);
        CHECK(m.corr.se < 0.05);  // the test has the power to see a wrong correlation
    }
}

TEST_CASE("sample_equicorrelated: the extreme correlations hold exactly in every column") {
    normal_sequence rng{stream_key{5, 5, 5}};
    Eigen::MatrixXd x(k_tokens, 50);

    SUBCASE("corr = 1: every token of a column is the same number") {
        sample_equicorrelated(x, -1.5, 4.0, 1.0, rng);
        for (Eigen::Index k = 0; k < x.cols(); ++k)
            for (Eigen::Index i = 1; i < x.rows(); ++i) CHECK(x(i, k) == x(0, k));
    }
    SUBCASE("corr = -1/(L - 1): the tokens of a column sum to L mu") {
        const double mean = 0.3;
        sample_equicorrelated(x, mean, 2.0, -1.0 / (k_tokens - 1), rng);
        for (Eigen::Index k = 0; k < x.cols(); ++k)
            CHECK(x.col(k).sum() == doctest::Approx(k_tokens * mean).epsilon(1e-12));
    }
    SUBCASE("L = 2, corr = -1: the two tokens mirror each other about mu") {
        Eigen::MatrixXd y(2, 50);
        sample_equicorrelated(y, 1.25, 3.0, -1.0, rng);
        for (Eigen::Index k = 0; k < y.cols(); ++k)
            CHECK(y(0, k) + y(1, k) == doctest::Approx(2.5).epsilon(1e-12));
    }
    SUBCASE("var = 0: every element is the mean") {
        sample_equicorrelated(x, 0.5, 0.0, 0.3, rng);
        CHECK((x.array() == 0.5).all());
    }
}

TEST_CASE("sample_equicorrelated: a correlation below -1/(L - 1) is refused") {
    normal_sequence rng{stream_key{1, 1, 1}};
    Eigen::MatrixXd x(k_tokens, 4);
    CHECK_THROWS_AS(sample_equicorrelated(x, 0.0, 1.0, -0.2, rng), std::invalid_argument);
    CHECK_NOTHROW(sample_equicorrelated(x, 0.0, 1.0, -1.0 / (k_tokens - 1), rng));
}

TEST_CASE("sample_signal and sample_gradient: deterministic, and the gradient has mean 0") {
    Eigen::MatrixXd a(4, 3000), b(4, 3000);
    normal_sequence r1{stream_key{8, 0, 0}}, r2{stream_key{8, 0, 0}};
    sample_signal(a, sigprop::signal<double>{2.0, 0.5, 0.25}, r1);
    sample_signal(b, sigprop::signal<double>{2.0, 0.5, 0.25}, r2);
    CHECK(a == b);

    moment_accumulator acc(4, 10);
    normal_sequence rg{stream_key{8, 0, 1}};
    Eigen::MatrixXd g(4, 300);
    for (int blk = 0; blk < 10; ++blk) {
        sample_gradient(g, sigprop::gradient<double>{3.0, 0.4}, rg);
        acc.add(g, blk);
    }
    const auto m = acc.result();
    check_within("g mean", 0.0, m.mean);
    check_within("g var", 3.0, m.var);
    check_within("g corr", 0.4, m.corr);
}
