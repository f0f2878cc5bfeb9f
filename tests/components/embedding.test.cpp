#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "sigprop/components/embedding.hpp"
#include "sigprop/validation/components/embedding.hpp"
#include "support/agreement.hpp"

using namespace sigprop;

TEST_CASE_TEMPLATE("embedding: exact values", T, float, double, long double) {
    // var = 1 + 4 + 0.25; cov = 1 * 0.1 + 4 * 0 + 0.25 * 0.5 = 0.225.
    const embedding<T> e{{{T(1), T(0.1)}, {T(2), T(0)}, {T(0.5), T(0.5)}}};
    const auto y = forward(e);
    CHECK(y.mean == T(0));
    CHECK(double(y.var) == doctest::Approx(5.25).epsilon(1e-6));
    CHECK(double(y.corr) == doctest::Approx(0.225 / 5.25).epsilon(1e-6));
    const auto g = backward(e, gradient<T>{T(2), T(0.3)});
    CHECK(g.var == T(2));
    CHECK(g.corr == T(0.3));
    // d s2_g L (1 + (L - 1) q r_g) = 8 * 2 * 10 * (1 + 9 * 0.1 * 0.3) = 203.2; 160 for q = 0;
    // 160 * (1 + 9 * 0.5 * 0.3) = 376 for q = 0.5.
    CHECK(double(weight_grad_sq_norm(e, gradient<T>{T(2), T(0.3)}, 10, 8, 0)) == doctest::Approx(203.2).epsilon(1e-6));
    CHECK(weight_grad_sq_norm(e, gradient<T>{T(2), T(0.3)}, 10, 8, 1) == T(160));
    CHECK(double(weight_grad_sq_norm(e, gradient<T>{T(2), T(0.3)}, 10, 8, 2)) == doctest::Approx(376).epsilon(1e-6));
}

TEST_CASE_TEMPLATE("embedding: same-row probability helpers, exact values", T, float, double, long double) {
    // Unigram: (1 + 1 + 4) / 16; counts and probabilities give the same answer.
    CHECK(double(same_row_probability_unigram<T>(std::vector<T>{T(1), T(1), T(2)})) == doctest::Approx(0.375).epsilon(1e-6));
    CHECK(double(same_row_probability_unigram<T>(std::vector<int>{10, 10, 20})) == doctest::Approx(0.375).epsilon(1e-6));
    CHECK(double(same_row_probability_unigram<T>(std::vector<T>{T(0.25), T(0.25), T(0.5)})) == doctest::Approx(0.375).epsilon(1e-6));
    // Huge and tiny weights are scaled before squaring.
    const T big = std::numeric_limits<T>::max() / T(4), tiny = std::numeric_limits<T>::denorm_min();
    CHECK(double(same_row_probability_unigram<T>(std::vector<T>{big, big})) == doctest::Approx(0.5).epsilon(1e-6));
    CHECK(double(same_row_probability_unigram<T>(std::vector<T>{tiny, tiny, T(0)})) == doctest::Approx(0.5).epsilon(1e-6));
    // Tokens {1,2,1,3}: 2 ordered pairs out of 12; {5,5,5,5}: 12 of 12; {7,8}: none.
    const std::vector<int> flat{1, 2, 1, 3, 5, 5, 5, 5};
    CHECK(double(same_row_probability_tokens<T>(flat, 4)) == doctest::Approx((1.0 / 6 + 1.0) / 2).epsilon(1e-6));
    const std::vector<std::vector<long>> seqs{{1, 2, 1, 3}, {5, 5, 5, 5}, {7, 8}};
    CHECK(double(same_row_probability_sequences<T>(seqs)) == doctest::Approx((1.0 / 6 + 1.0) / 3).epsilon(1e-6));
    // Blocks of 3 and 5 positions: (6 + 20) / 56.
    CHECK(double(same_row_probability_counts<T>(std::vector<int>{3, 5})) == doctest::Approx(26.0 / 56).epsilon(1e-6));
    CHECK(same_row_probability_counts<T>(std::vector<int>{1, 1, 1, 0}) == T(0));
    CHECK(double(same_row_probability_two_segments<T>(T(0.3))) == doctest::Approx(0.58).epsilon(1e-6));
    CHECK(same_row_probability_two_segments<T>(T(1)) == T(1));
    CHECK(same_row_probability_two_segments<T>(T(0.5)) == T(0.5));
    // BERT: three equal tables, corr = (q_word + 0 + q_segment) / 3.
    const auto bert = bert_embedding<T>(T(0.163));
    CHECK(bert.tables.size() == 3);
    CHECK(double(forward(bert).var) == doctest::Approx(3 * 0.0004).epsilon(1e-6));
    CHECK(double(forward(bert).corr) == doctest::Approx(0.663 / 3).epsilon(1e-6));
}

TEST_CASE_TEMPLATE("embedding: Zipf same-row probability", T, float, double, long double) {
    const double eps = double(std::numeric_limits<T>::epsilon());
    // Closed forms: V = 1 gives 1; V = 2 gives (1 + 4^-a) / (1 + 2^-a)^2; a = 0 gives 1/V.
    CHECK(same_row_probability_zipf<T>(1, T(1.3)) == T(1));
    for (double a : {0.0, 0.5, 1.0, 3.0}) {
        const double ref = (1 + std::pow(4.0, -a)) / std::pow(1 + std::pow(2.0, -a), 2);
        CHECK(double(same_row_probability_zipf<T>(2, T(a))) == doctest::Approx(ref).epsilon(8 * eps));
    }
    for (std::uint64_t V : {3ull, 17ull, 1000ull, 1000000000ull, 1000000000000000000ull})
        CHECK(double(same_row_probability_zipf<T>(V, T(0))) == doctest::Approx(1.0 / double(V)).epsilon(32 * eps));
    // Large V against the zeta asymptotics, H(V, s) = zeta(s) - V^(1-s)/(s-1) + V^-s/2 - ...:
    // a = 2, V = 1e18: q = zeta(4) / zeta(2)^2 = 0.4 up to ~1e-18.
    CHECK(double(same_row_probability_zipf<T>(1000000000000000000ull, T(2))) == doctest::Approx(0.4).epsilon(8 * eps));
    // a = 1.5, V = 1e18 (zeta(3) and zeta(1.5) to 20 digits).
    {
        const long double V = 1e18L, zeta3 = 1.2020569031595942854L, zeta15 = 2.6123753486854883433L;
        const long double h3 = zeta3 - 1 / (2 * V * V), h15 = zeta15 - 2 / std::sqrt(V) + 1 / (2 * V * std::sqrt(V));
        CHECK(double(same_row_probability_zipf<T>(1000000000000000000ull, T(1.5))) ==
              doctest::Approx(double(h3 / (h15 * h15))).epsilon(16 * eps));
    }
    // a = 1, V = 1e9: H(V, 1) = ln V + gamma + 1/(2V) - ..., H(V, 2) = pi^2/6 - 1/V + 1/(2V^2).
    {
        const long double V = 1e9L, gamma = 0.57721566490153286061L, pi = 3.14159265358979323846L;
        const long double h1 = std::log(V) + gamma + 1 / (2 * V), h2 = pi * pi / 6 - 1 / V;
        CHECK(double(same_row_probability_zipf<T>(1000000000ull, T(1))) == doctest::Approx(double(h2 / (h1 * h1))).epsilon(16 * eps));
    }
    // Moderate V against the direct sum in long double, smallest terms first.
    for (std::uint64_t V : {15ull, 16ull, 17ull, 40ull, 5000ull})
        for (double a : {0.3, 0.5, 1.0, 1.07, 2.5, 40.0}) {
            long double h1 = 0, h2 = 0;
            for (std::uint64_t k = V; k >= 1; --k) {
                h1 += std::pow((long double)k, -(long double)a);
                h2 += std::pow((long double)k, -2 * (long double)a);
            }
            INFO("V = " << V << ", a = " << a);
            CHECK(double(same_row_probability_zipf<T>(V, T(a))) == doctest::Approx(double(h2 / h1 / h1)).epsilon(32 * eps));
        }
    // Huge exponents: the most frequent token takes everything, no NaN.
    CHECK(same_row_probability_zipf<T>(1000000000ull, T(5000)) == T(1));
    CHECK(std::isfinite(double(same_row_probability_zipf<T>(std::numeric_limits<std::uint64_t>::max(), T(0.7)))));
}

TEST_CASE_TEMPLATE("embedding: limits and extremes", T, float, double, long double) {
    const T big = std::numeric_limits<T>::max();
    SUBCASE("all tables zero: the equal-sigma limit, the mean of the q_t") {
        const auto y = forward(embedding<T>{{{T(0), T(0.2)}, {T(0), T(0.6)}}});
        CHECK(y.var == T(0));
        CHECK(double(y.corr) == doctest::Approx(0.4));
    }
    SUBCASE("one table: corr = q exactly, including q = 0 and q = 1") {
        for (T q : {T(0), T(0.37), T(1)}) CHECK(forward(embedding<T>{{{T(3), q}}}).corr == q);
    }
    SUBCASE("huge sigmas overflow the variance to +inf but keep the correlation") {
        const auto y = forward(embedding<T>{{{big, T(0.2)}, {big / T(2), T(1)}}});
        CHECK(y.var == std::numeric_limits<T>::infinity());
        CHECK(double(y.corr) == doctest::Approx(0.36));  // (0.2 + 0.25) / 1.25
    }
    SUBCASE("tiny sigmas keep the correlation when their squares underflow") {
        const T tiny = std::numeric_limits<T>::denorm_min();
        const auto y = forward(embedding<T>{{{tiny, T(0)}, {tiny, T(1)}}});
        CHECK(y.var == T(0));
        CHECK(double(y.corr) == doctest::Approx(0.5));
    }
    SUBCASE("weight gradient: L = 1, q = 0, and the least correlation") {
        const embedding<T> e{{{T(1), T(1)}, {T(1), T(0)}}};
        CHECK(weight_grad_sq_norm(e, gradient<T>{T(3), T(0.5)}, 1, 4, 0) == T(12));
        CHECK(weight_grad_sq_norm(e, gradient<T>{T(3), T(0.5)}, 7, 4, 1) == T(84));
        // q = 1 and r_g = -1/(L - 1): every row gets the sum of the gradients, zero on average.
        const T r = T(-1) / T(6);
        const T n = weight_grad_sq_norm(e, gradient<T>{T(3), r}, 7, 4, 0);
        CHECK(n >= T(0));
        CHECK(double(n) <= 84 * 8 * double(std::numeric_limits<T>::epsilon()));
        CHECK(weight_grad_sq_norm(e, gradient<T>{big, T(1)}, 7, 4, 0) == std::numeric_limits<T>::infinity());
        CHECK(weight_grad_sq_norm(e, gradient<T>{big, r}, 7, 4, 0) >= T(0));  // never 0 * inf
    }
}

TEST_CASE_TEMPLATE("embedding: property sweep over random valid inputs", T, float, double, long double) {
    // Any tables: finite or +inf variance >= 0, correlation within [min q_t, max q_t]
    // (a weighted mean), weight gradient norms >= 0 and never NaN.
    std::mt19937_64 rng(777);
    std::uniform_real_distribution<double> u(0, 1);
    for (int n = 0; n < 3000; ++n) {
        embedding<T> e;
        const int tables = 1 + n % 4;
        T qmin(1), qmax(0);
        for (int t = 0; t < tables; ++t) {
            const T sigma = (n + t) % 9 == 0 ? T(0) : T(std::pow(10.0, 60 * u(rng) - 30));
            const T q = (n + t) % 5 == 0 ? T((n + t) % 2) : T(u(rng));
            e.tables.push_back({sigma, q});
            qmin = q < qmin ? q : qmin;
            qmax = q > qmax ? q : qmax;
        }
        const auto y = forward(e);
        REQUIRE(!std::isnan(double(y.var)));
        REQUIRE(!std::isnan(double(y.corr)));
        CHECK(y.var >= T(0));
        CHECK(y.corr >= qmin * (1 - 8 * std::numeric_limits<T>::epsilon()));
        CHECK(y.corr <= qmax * (1 + 8 * std::numeric_limits<T>::epsilon()));
        const int L = 2 + n % 500, d = 1 + n % 64;
        const T rg = T(-1.0 / (L - 1) + u(rng) * (1 + 1.0 / (L - 1)));
        const T s2g = T(std::pow(10.0, 60 * u(rng) - 30));
        for (int t = 0; t < tables; ++t) {
            const T w = weight_grad_sq_norm(e, gradient<T>{s2g, rg}, L, d, std::size_t(t));
            REQUIRE(!std::isnan(double(w)));
            CHECK(w >= T(0));
        }
    }
}

TEST_CASE("embedding: bad input throws sigprop::invalid_argument naming the problem") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    struct row {
        embedding<double> e;
        const char* message;  // the full message where the row pins it down
    };
    const std::vector<row> bad_tables{
        {{{}}, "sigprop::embedding: tables.size() = 0 is outside the valid range [1, inf)"},
        {{{{-1, 0}}}, "sigprop::embedding: tables[0].sigma = -1 is outside the valid range [0, inf) (finite)"},
        {{{{1, 0}, {nan, 0}}}, "sigprop::embedding: tables[1].sigma = nan is outside the valid range [0, inf) (finite)"},
        {{{{inf, 0}}}, nullptr},
        {{{{1, 1.5}}}, "sigprop::embedding: tables[0].same_row = 1.5 is outside the valid range [0, 1]"},
        {{{{1, -0.1}}}, nullptr},
        {{{{1, nan}}}, nullptr},
        {{{{1, inf}}}, nullptr},
    };
    for (const auto& r : bad_tables) {
        CHECK_THROWS_AS(forward(r.e), sigprop::invalid_argument);
        CHECK_THROWS_AS(backward(r.e, gradient<double>{}), sigprop::invalid_argument);
        CHECK_THROWS_AS(weight_grad_sq_norm(r.e, gradient<double>{}, 4, 4, 0), sigprop::invalid_argument);
        if (r.message) CHECK_THROWS_WITH(forward(r.e), r.message);
    }
    const embedding<double> e{{{1, 0.5}}};
    struct grad_row {
        gradient<double> g;
        int L, d;
        std::size_t table;
        const char* message;
    };
    const std::vector<grad_row> bad_grads{
        {{-1, 0}, 4, 4, 0, "sigprop::embedding: g.var = -1 is outside the valid range [0, inf) (finite)"},
        {{inf, 0}, 4, 4, 0, nullptr},
        {{nan, 0}, 4, 4, 0, nullptr},
        {{1, 1.5}, 4, 4, 0, "sigprop::embedding: g.corr = 1.5 is outside the valid range [-1, 1]"},
        {{1, nan}, 4, 4, 0, nullptr},
        {{1, -0.5}, 4, 4, 0, "sigprop::embedding: g.corr = -0.5 is outside the valid range [-1/(L - 1), 1] with L = 4"},
        {{1, 0}, 0, 4, 0, "sigprop::embedding: L = 0 is outside the valid range [1, inf)"},
        {{1, 0}, 4, -2, 0, "sigprop::embedding: d = -2 is outside the valid range [1, inf)"},
        {{1, 0}, 4, 4, 1, "sigprop::embedding: table = 1 is outside the valid range [0, 1)"},
    };
    for (const auto& r : bad_grads) {
        CHECK_THROWS_AS(weight_grad_sq_norm(e, r.g, r.L, r.d, r.table), sigprop::invalid_argument);
        if (r.message) CHECK_THROWS_WITH(weight_grad_sq_norm(e, r.g, r.L, r.d, r.table), r.message);
    }
    CHECK_THROWS_AS(backward(e, gradient<double>{-1, 0}), sigprop::invalid_argument);
    CHECK_THROWS_AS(backward(e, gradient<double>{1, -2}), sigprop::invalid_argument);
    CHECK_NOTHROW(weight_grad_sq_norm(e, gradient<double>{1, -1.0 / 3}, 4, 4, 0));

    // The helpers.
    using V = std::vector<double>;
    CHECK_THROWS_WITH_AS(same_row_probability_unigram<double>(V{0.5, -0.1}),
                         "sigprop::embedding: weights[1] = -0.10000000000000001 is outside the valid range [0, inf) (finite)",
                         sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_unigram<double>(V{0.5, nan}), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_unigram<double>(V{inf}), sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(same_row_probability_unigram<double>(V{0, 0}),
                         "sigprop::embedding: sum(weights) = 0 is outside the valid range (0, inf)", sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_unigram<double>(V{}), sigprop::invalid_argument);
    CHECK_THROWS_WITH_AS(same_row_probability_zipf<double>(0, 1.0),
                         "sigprop::embedding: vocab = 0 is outside the valid range [1, inf)", sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_zipf<double>(10, -0.5), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_zipf<double>(10, nan), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_zipf<double>(10, inf), sigprop::invalid_argument);
    const std::vector<int> ids{1, 2, 3, 4, 5, 6};
    CHECK_THROWS_WITH_AS(same_row_probability_tokens<double>(ids, 1),
                         "sigprop::embedding: seq_len = 1 is outside the valid range [2, inf)", sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_tokens<double>(ids, 4), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_tokens<double>(std::vector<int>{}, 2), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_sequences<double>(std::vector<std::vector<int>>{{1, 2}, {3}}),
                    sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_sequences<double>(std::vector<std::vector<int>>{}), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_counts<double>(std::vector<int>{3, -1}), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_counts<double>(std::vector<int>{1}), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_two_segments<double>(1.5), sigprop::invalid_argument);
    CHECK_THROWS_AS(same_row_probability_two_segments<double>(nan), sigprop::invalid_argument);
    CHECK_THROWS_AS(bert_embedding<double>(1.2), sigprop::invalid_argument);
    CHECK_THROWS_AS(bert_embedding<double>(0.1, 0.5, -0.02), sigprop::invalid_argument);
}

TEST_CASE("embedding: the model's hand-written backward matches finite differences") {
    const int L = 5;
    std::vector<int> pos(L);
    std::iota(pos.begin(), pos.end(), 0);
    validation::embedding_model m{{{0.8, {0.5, 0.3, 0.2}, {}}, {0.4, {}, {pos}}}, 3, {}, {}};
    auto st = validation::streams_for(validation::run_options{3, 0, 2, 2}, 0);
    m.forward(st, L, 0);
    const Eigen::MatrixXd gy = Eigen::MatrixXd::Random(L, 3);
    const auto dw = m.backward(gy);
    const double h = 1e-6;
    for (std::size_t t = 0; t < m.w.size(); ++t)
        for (Eigen::Index n = 0; n < m.w[t].size(); ++n) {
            const double keep = m.w[t].data()[n];
            m.w[t].data()[n] = keep + h;
            const double up = m.lookup().cwiseProduct(gy).sum();
            m.w[t].data()[n] = keep - h;
            const double down = m.lookup().cwiseProduct(gy).sum();
            m.w[t].data()[n] = keep;
            CHECK(dw[t].data()[n] == doctest::Approx((up - down) / (2 * h)).epsilon(1e-7));
        }
}

namespace {

void check_embedding_agrees(const embedding<double>& e, const std::vector<validation::embedding_table_spec>& spec,
                            int L, int d, const gradient<double>& g, const validation::run_options& o) {
    const auto m = validation::measure(spec, L, d, g, o);
    const auto y = forward(e);
    test::check_agrees("x mean", y.mean, m.y.mean);
    test::check_agrees("x var", y.var, m.y.var);
    test::check_agrees("x cov", y.corr * y.var, m.y.cov);
    const auto gt = backward(e, g);
    CHECK(gt.var == g.var);
    CHECK(gt.corr == g.corr);
    for (std::size_t t = 0; t < spec.size(); ++t) {
        INFO("table " << t);
        test::check_agrees("weight grad sq norm", weight_grad_sq_norm(e, g, L, d, t), m.weight_grad_sq_norm[t]);
    }
}

}  // namespace

TEST_CASE("embedding: agrees with the Monte-Carlo validator (i.i.d. words, positions, contiguous segments)") {
    // Words i.i.d. from Zipf(1) over 20 tokens; absolute positions; two contiguous segments
    // of 5 and 7 positions.
    const int L = 12, d = 32;
    std::vector<double> zipf(20);
    for (int k = 0; k < 20; ++k) zipf[std::size_t(k)] = 1.0 / (k + 1);
    std::vector<int> pos(L), seg(L, 0);
    std::iota(pos.begin(), pos.end(), 0);
    for (int i = 5; i < L; ++i) seg[std::size_t(i)] = 1;
    const embedding<double> e{{{1.0, same_row_probability_zipf<double>(20, 1.0)},
                               {0.5, 0.0},
                               {0.7, same_row_probability_counts<double>(std::vector<int>{5, 7})}}};
    check_embedding_agrees(e, {{1.0, zipf, {}}, {0.5, {}, {pos}}, {0.7, {}, {seg}}}, L, d, {1.5, 0.4},
                           validation::run_options{5, 0, 12000, 20});
}

TEST_CASE("embedding: agrees with the Monte-Carlo validator (a bursty corpus, negative gradient correlation)") {
    // A corpus where every sequence repeats a few "topic" tokens: q from the sample is far
    // above the unigram sum of p_k^2, and the model reads the very same sequences.
    // Sequence s of the run reads corpus[s % 49] and lands in jackknife block s % 20: with
    // sizes coprime every block sees the whole corpus, so blocks differ only by noise.
    const int L = 16, d = 24;
    std::mt19937 rng(4242);
    std::uniform_int_distribution<int> vocab(0, 999), topic(0, 3), coin(0, 1);
    std::vector<std::vector<int>> corpus(49, std::vector<int>(L));
    for (auto& s : corpus) {
        int topics[4];
        for (int& t : topics) t = vocab(rng);
        for (int& id : s) id = coin(rng) ? topics[topic(rng)] : vocab(rng);
    }
    const double q = same_row_probability_sequences<double>(corpus);
    INFO("corpus q = " << q);
    CHECK(q > 0.05);
    const embedding<double> e{{{0.9, q}, {0.3, same_row_probability_two_segments(0.3)}}};
    check_embedding_agrees(e, {{0.9, {}, corpus}, {0.3, {0.3, 0.7}, {}}}, L, d, {0.7, -0.05},
                           validation::run_options{9, 1, 8000, 20});
}
