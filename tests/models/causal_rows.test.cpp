// The O(1) causal row averages of predict() (models/causal_rows.hpp) against a
// straightforward O(L) evaluation of the same sums, row by row, kept here, and against the
// component's causal_statistics; predict() with and without its table.
#include <cmath>
#include <vector>

#include <doctest/doctest.h>

#include "sigprop/compose.hpp"
#include "sigprop/models.hpp"
#include "sigprop/models/causal_rows.hpp"

using namespace sigprop;

namespace {

// Row by row, as written in docs/theory/multi_head_attention.md: row 1 has E sum P^2 = 1,
// no softmax gradient and bracket 1/(1-p); row i >= 2 the delta-method P2 with L -> i.
detail::causal_scores<double> by_rows(int d_in, int L, double r, double p, const detail::attention_scores<double>& sc) {
    const double d = d_in, inv = 1 / (1 - p), k = p * inv;
    double h = 0, sp = 0, spq = 0, vb = 0;
    for (int i = 1; i <= L; ++i) {
        const double n = i;
        h += 1 / n;
        if (i == 1) {
            sp += 1;
            vb += inv;
            continue;
        }
        const double shrink = std::max(0.5, 1 - (sc.e_sig - 1) * (2 * sc.e_sig - 1) / n);
        const double p2 = std::min(1.0, sc.e_sig / n * shrink);
        const double tilt = std::max(0.0, 1 - 2 * sc.e_sig / n);
        const double w = (d - 1) * p2 + sc.sig * tilt + sc.e_sig * (1 + sc.sig) / n + k * p2 * (d + 4 * sc.sig);
        sp += p2;
        spq += p2 * (1 - 1 / n);
        vb += r * (1 + k * p2) + (1 - r) * w / d;
    }
    detail::causal_scores<double> s{};
    s.h = h / L;
    s.sum_p2 = sp / L;
    s.sum_p2q = spq / L;
    s.var_bracket = vb / L;
    return s;
}

// Relative agreement (doctest::Approx adds an absolute 1 to its scale, too loose here).
void check_rel(double a, double b, double eps) {
    INFO(a << " against " << b);
    CHECK(std::abs(a - b) <= eps * std::abs(b));
}

void check_same(const detail::causal_scores<double>& a, const detail::causal_scores<double>& b, double eps) {
    check_rel(a.h, b.h, eps);
    check_rel(a.sum_p2, b.sum_p2, eps);
    check_rel(a.sum_p2q, b.sum_p2q, eps);
    check_rel(a.var_bracket, b.var_bracket, eps);
}

}  // namespace

TEST_CASE("models: inverse-power suffix sums") {
    const auto t = detail::inverse_power_tails_of<double>(4);
    REQUIRE(t.at.size() == 6u);
    CHECK(t.at[5].h1 == 0);
    CHECK(t.at[4].h1 == 0.25);
    CHECK(t.at[1].h1 == doctest::Approx(25.0 / 12).epsilon(1e-15));
    CHECK(t.at[2].h2 == doctest::Approx(1.0 / 4 + 1.0 / 9 + 1.0 / 16).epsilon(1e-15));
    CHECK(t.at[3].h3 == doctest::Approx(1.0 / 27 + 1.0 / 64).epsilon(1e-15));
}

TEST_CASE("models: O(1) causal row averages equal the row-by-row sums") {
    // Score variances from none (sigma_q sigma_k = 0) to sig ~ 3, where the clamps bind over
    // hundreds of rows; lengths from 2 (only clamped rows) to 2000; with and without dropout.
    const int d = 64;
    int mixed = 0;
    for (int L : {2, 3, 5, 17, 64, 512, 2000}) {
        const auto tails = detail::inverse_power_tails_of<double>(L);
        for (double sqk : {0.0, 0.004, 0.012, 0.017, 0.0225})
            for (double r : {0.0, 0.3, 0.9, -0.02})
                for (double p : {0.0, 0.1}) {
                    CAPTURE(L);
                    CAPTURE(sqk);
                    CAPTURE(r);
                    CAPTURE(p);
                    const auto sc = detail::score_statistics(d, L, 1.3, r, sqk, 1.0);
                    const auto fast = detail::causal_statistics(d, r, p, sc, tails);
                    check_same(fast, by_rows(d, L, r, p, sc), 1e-12);
                    check_same(fast, detail::causal_statistics(d, L, r, p, sc), 1e-12);
                    const double A = (sc.e_sig - 1) * (2 * sc.e_sig - 1);
                    const double edge = std::max(2 * A, 2 * sc.e_sig);
                    mixed += edge >= 3 && edge + 1 < L;  // clamped rows and a closed-form tail
                }
    }
    // Most cases have both rows where a clamp binds and rows summed in closed form.
    CHECK(mixed > 30);
}

TEST_CASE("models: O(1) causal row averages with overflowed scores") {
    // e^sig = inf: every row is one-hot (P2 = 1); the table is not used and nothing is NaN.
    const int L = 40;
    const auto tails = detail::inverse_power_tails_of<double>(L);
    const auto sc = detail::score_statistics(64, L, 1e200, 0.3, 1.0, 1.0);
    REQUIRE(std::isinf(sc.e_sig));
    const auto fast = detail::causal_statistics(64, 0.3, 0.1, sc, tails);
    const auto slow = detail::causal_statistics(64, L, 0.3, 0.1, sc);
    CHECK(fast.sum_p2 == slow.sum_p2);
    CHECK(fast.sum_p2q == slow.sum_p2q);
    CHECK(fast.var_bracket == slow.var_bracket);
    CHECK(fast.h == doctest::Approx(slow.h).epsilon(1e-15));
}

TEST_CASE("models: predict's causal blocks on both sides of the tabulated length") {
    // Up to max_tabulated_len predict() sums the rows from its table, above it with the
    // component's row loop (bounded memory); either way the first block equals the public
    // components composed by hand.
    for (int L : {detail::max_tabulated_len, detail::max_tabulated_len + 1}) {
        CAPTURE(L);
        transformer_spec<double> s;
        s.layers = 1;
        s.arch = architecture::decoder;
        s.d_model = 16;
        s.d_ff = 32;
        s.heads = 2;
        s.seq_len = L;
        s.p_attention = 0.1;
        s.input = {0, 1.2, 0.3};
        s.sigmas.assign(1, {0.2, 0.25, 0.3, 0.2, 0.3, 0.3, 0, 0, 0, 0});
        const auto tr = predict(s);
        const auto& w = s.sigmas[0];
        const multi_head_attention<double> m{16, 2, L, w.q, w.k, w.v, w.o, 0.1, true};
        const auto a = forward(residual(serial(layer_norm<double>{16}, m, dropout<double>{0}), 1.0, 1.0), s.input);
        check_rel(tr.points[1].x.var, a.var, 1e-12);
        check_rel(tr.points[1].x.corr, a.corr, 1e-12);
    }
}
