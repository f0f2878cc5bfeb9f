// The estimator: exact values on hand-computed data, jackknife standard errors that are
// calibrated (z-scores over many independent runs have an rms near 1), and merge().
#include <cmath>
#include <stdexcept>
#include <string>

#include <doctest/doctest.h>

#include <Eigen/Core>

#include "sigprop/validation/estimator.hpp"
#include "sigprop/validation/sampler.hpp"

using namespace sigprop::validation;

TEST_CASE("moment_accumulator: hand-computed moments, exactly") {
    // Two tokens, four columns (one block each):
    //   token 0: 1 2 0 4        token 1: 3 5 -1 2
    // mean = 16/8 = 2; E[x^2] = 60/8 = 7.5, var = 7.5 - 4 = 3.5; token means 1.75 and
    // 2.25, sample covariance (21 - 4 * 1.75 * 2.25) / 3 = 1.75; corr = 1.75 / 3.5 = 0.5.
    // Every step is exact in binary floating point.
    Eigen::MatrixXd data(2, 4);
    data << 1, 2, 0, 4,
            3, 5, -1, 2;
    moment_accumulator acc(2, 4);
    for (int k = 0; k < 4; ++k) acc.add(data.col(k), k);
    CHECK(acc.tokens() == 2);
    CHECK(acc.blocks() == 4);
    const auto m = acc.result();
    CHECK(m.mean.value == 2.0);
    CHECK(m.var.value == 3.5);
    CHECK(m.cov.value == 1.75);
    CHECK(m.corr.value == 0.5);

    // The estimates do not depend on how the columns are spread over blocks, and adding
    // an empty matrix changes nothing.
    moment_accumulator two(2, 2);
    two.add(data.leftCols(3), 0);
    two.add(data.rightCols(1), 1);
    two.add(Eigen::MatrixXd(2, 0), 1);
    const auto w = two.result();
    CHECK(w.mean.value == 2.0);
    CHECK(w.var.value == 3.5);
    CHECK(w.cov.value == 1.75);
    CHECK(w.corr.value == 0.5);

    // The same four columns twice: mean and var unchanged; the covariance is a sample
    // covariance (divided by N - 1): (42 - 8 * 1.75 * 2.25) / 7 = 1.5.
    moment_accumulator twice(2, 2);
    twice.add(data, 0);
    twice.add(data, 1);
    const auto d = twice.result();
    CHECK(d.mean.value == 2.0);
    CHECK(d.var.value == 3.5);
    CHECK(d.cov.value == 1.5);

    // Two more columns (2, 2): 12 values summing to 24, mean 2; E[x^2] = (60 + 16) / 12,
    // var = 19/3 - 4 = 7/3.
    Eigen::MatrixXd more(2, 6);
    more << 1, 2, 0, 4, 2, 2,
            3, 5, -1, 2, 2, 2;
    moment_accumulator six(2, 3);
    for (int k = 0; k < 6; ++k) six.add(more.col(k), k % 3);
    // Token means 11/6 and 13/6; sum of products 21 + 4 + 4 = 29;
    // cov = (29 - 6 * 11/6 * 13/6) / 5 = (31/6) / 5 = 31/30; corr = (31/30) / (7/3) = 31/70.
    const auto t = six.result();
    CHECK(t.mean.value == 2.0);
    CHECK(t.var.value == doctest::Approx(7.0 / 3.0).epsilon(1e-15));
    CHECK(t.cov.value == doctest::Approx(31.0 / 30.0).epsilon(1e-15));
    CHECK(t.corr.value == doctest::Approx(31.0 / 70.0).epsilon(1e-15));
}

TEST_CASE("moment_accumulator: hand-computed jackknife standard error of the mean") {
    // Three blocks of one column each, both tokens equal to 1, 2 and 3. Leave-one-out means
    // 2.5, 2, 1.5: se^2 = (g - 1)/g sum (m_k - 2)^2 = 2/3 * 0.5 = 1/3, the textbook
    // standard error of the mean of the three block means.
    moment_accumulator acc(2, 3);
    for (int b = 0; b < 3; ++b) acc.add(Eigen::MatrixXd::Constant(2, 1, b + 1.0), b);
    const auto m = acc.result();
    CHECK(m.mean.value == 2.0);
    CHECK(m.mean.se == doctest::Approx(std::sqrt(1.0 / 3.0)).epsilon(1e-14));
    // Leave-one-out variances: values {2,3}, {1,3}, {1,2} -> 0.25, 1, 0.25; average 0.5;
    // se^2 = 2/3 * (0.0625 + 0.25 + 0.0625) = 0.25.
    CHECK(m.var.value == doctest::Approx(2.0 / 3.0).epsilon(1e-15));
    CHECK(m.var.se == doctest::Approx(0.5).epsilon(1e-14));
}

TEST_CASE("moment_accumulator: bad shapes and too few blocks are refused") {
    CHECK_THROWS_AS(moment_accumulator(1, 4), std::invalid_argument);
    CHECK_THROWS_AS(moment_accumulator(4, 1), std::invalid_argument);
    moment_accumulator acc(3, 4);
    CHECK_THROWS_AS(acc.add(Eigen::MatrixXd::Ones(2, 5), 0), std::invalid_argument);
    CHECK_THROWS_AS(acc.add(Eigen::MatrixXd::Ones(3, 5), 4), std::out_of_range);
    acc.add(Eigen::MatrixXd::Random(3, 5), 0);
    CHECK_THROWS_AS(acc.result(), std::logic_error);  // one block only: no jackknife
    CHECK_THROWS_AS(acc.merge(moment_accumulator(3, 5)), std::invalid_argument);
    CHECK_THROWS_AS(acc.merge(moment_accumulator(4, 4)), std::invalid_argument);
}

TEST_CASE("moment_accumulator: merge() equals adding everything to one accumulator") {
    const int L = 5, blocks = 6;
    moment_accumulator all(L, blocks), a(L, blocks), b(L, blocks);
    normal_sequence rng{stream_key{31, 4, 1}};
    Eigen::MatrixXd x(L, 37);
    for (int i = 0; i < 30; ++i) {
        sample_equicorrelated(x, 0.4, 1.7, 0.35, rng);
        const int block = (i * 7) % blocks;
        all.add(x, block);
        (i % 3 == 0 ? a : b).add(x, block);
    }
    a.merge(b);
    const auto m = a.result(), e = all.result();
    const measured measured_moments::*fields[] = {&measured_moments::mean, &measured_moments::var,
                                                   &measured_moments::cov, &measured_moments::corr};
    for (auto f : fields) {
        CHECK((m.*f).value == doctest::Approx((e.*f).value).epsilon(1e-12));
        CHECK((m.*f).se == doctest::Approx((e.*f).se).epsilon(1e-9));
    }
}

TEST_CASE("moment_accumulator: jackknife standard errors are calibrated") {
    // Many independent runs on data with known moments: the z-scores
    // (estimate - truth) / se must have an rms near 1. With 16 blocks z follows roughly a
    // t law with 15 degrees of freedom (rms ~ 1.07); 400 runs pin the rms to about +-0.04.
    const int L = 4, blocks = 16, columns = 32, runs = 400;
    const double mean = 0.5, var = 2.0, corr = 0.3;
    double z2[4] = {0, 0, 0, 0};
    Eigen::MatrixXd x(L, columns);
    for (int run = 0; run < runs; ++run) {
        moment_accumulator acc(L, blocks);
        normal_sequence rng{stream_key{std::uint64_t(1000 + run), 9, 0}};
        for (int b = 0; b < blocks; ++b) {
            sample_equicorrelated(x, mean, var, corr, rng);
            acc.add(x, b);
        }
        const auto m = acc.result();
        const double z[4] = {(m.mean.value - mean) / m.mean.se, (m.var.value - var) / m.var.se,
                             (m.cov.value - corr * var) / m.cov.se,
                             (m.corr.value - corr) / m.corr.se};
        for (int q = 0; q < 4; ++q) z2[q] += z[q] * z[q];
    }
    const char* names[] = {"mean", "var", "cov", "corr"};
    for (int q = 0; q < 4; ++q) {
        const double rms = std::sqrt(z2[q] / runs);
        INFO(std::string(names[q]) << ": rms z = " << rms);
        CHECK(rms > 0.85);
        CHECK(rms < 1.25);
    }
}

TEST_CASE("moment_accumulator: halves() are the even and the odd blocks measured alone") {
    const int L = 3, blocks = 5;
    moment_accumulator all(L, blocks), even(L, 2), odd(L, 2);
    normal_sequence rng{stream_key{77, 1, 0}};
    Eigen::MatrixXd x(L, 20);
    for (int b = 0; b < blocks; ++b) {
        sample_equicorrelated(x, 0.2, 1.5, 0.4, rng);
        all.add(x, b);
        (b % 2 == 0 ? even : odd).add(x, b / 2 % 2);
    }
    const auto h = all.halves();
    const auto e = even.result(), o = odd.result();
    CHECK(h[0].mean.value == doctest::Approx(e.mean.value).epsilon(1e-12));
    CHECK(h[0].var.value == doctest::Approx(e.var.value).epsilon(1e-12));
    CHECK(h[0].cov.value == doctest::Approx(e.cov.value).epsilon(1e-12));
    CHECK(h[1].corr.value == doctest::Approx(o.corr.value).epsilon(1e-12));
    CHECK(h[1].var.value == doctest::Approx(o.var.value).epsilon(1e-12));
    CHECK(h[1].cov.value == doctest::Approx(o.cov.value).epsilon(1e-12));
}
