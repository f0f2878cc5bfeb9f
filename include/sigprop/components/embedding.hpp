#pragma once
// Input embeddings: the sum of several lookup tables (word, position, segment/type), each
// with i.i.d. N(0, sigma_t^2) entries, evaluated at the token's row of every table; and
// helpers that compute a table's same-row probability from a unigram law, a Zipf law, a
// sample of token ids or segment proportions.
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <ranges>
#include <string>
#include <vector>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

/// One lookup table with entries i.i.d. N(0, sigma^2) (sigma is a standard deviation), and
/// same_row: the probability that two different positions of a sequence look up the same
/// row of this table (sum of p_k^2 for i.i.d. tokens with unigram law p, 0 for a table
/// of absolute positions, the chance of a shared segment for a segment table).
template <class T>
struct embedding_table {
    T sigma{1};
    T same_row{0};
};

/// The sum of the tables' lookups. The embedding is evaluated on the host (this aggregate
/// owns a std::vector); the GPU validator can call detail::forward_impl on a plain array.
template <class T>
struct embedding {
    std::vector<embedding_table<T>> tables;
};

namespace detail {

// Our derivation (REFERENCE section 2 states the same result). Tables are independent
// and zero-mean, and a row is a fresh Gaussian vector, so for positions i != j
//   E[y_i] = 0,  E[y_i^2] = sum_t sigma_t^2,
//   E[y_i y_j] = sum_t sigma_t^2 P(row_t(i) = row_t(j)) = sum_t sigma_t^2 q_t,
// exactly, whatever the law of the token ids (they need only be independent of the
// weights); q_t is the probability averaged over the pairs i != j, which is what the
// estimator averages too. The correlation is a weighted mean of the q_t, computed with
// every sigma divided by the largest so that neither huge nor tiny sigmas overflow or
// underflow; an overflowing variance is +infinity. When every sigma is 0 the output is 0
// and the correlation is given its limit for tables that shrink to 0 together with equal
// sigmas: the plain mean of the q_t.
template <class T>
SIGPROP_HD signal<T> forward_impl(const embedding_table<T>* tables, std::size_t n) noexcept {
    T big(0), var(0), mean_q(0);
    for (std::size_t t = 0; t < n; ++t) {
        if (tables[t].sigma > big) big = tables[t].sigma;
        var += tables[t].sigma * tables[t].sigma;
        mean_q += tables[t].same_row;
    }
    signal<T> y;
    y.mean = T(0);
    y.var = var;
    if (big == T(0)) {
        y.corr = mean_q / T(n);
        return y;
    }
    T w(0), wq(0);
    for (std::size_t t = 0; t < n; ++t) {
        const T a = tables[t].sigma / big;
        w += a * a;
        wq += a * a * tables[t].same_row;
    }
    y.corr = wq / w;
    return y;
}

// Our derivation. y = sum_t W_t[row_t(i)], so dL/d(lookup of table t) = g: every table
// receives the incoming gradient unchanged, with the same variance and correlation.
template <class T>
SIGPROP_HD gradient<T> backward_impl(const gradient<T>& g) noexcept {
    return g;
}

// Our derivation. One sequence, loss sum(Y * G): row k of table t collects the gradients
// of the positions that look it up, dW_t[k] = sum_{i: row_t(i) = k} g_i, so
//   ||dW_t||^2 = sum_{i,j: row_t(i) = row_t(j)} <g_i, g_j>
// and, with the ids independent of G (zero-mean, d units, variance s2_g, correlation r_g),
//   E||dW_t||^2 = d s2_g (L + L (L - 1) q_t r_g) = d s2_g L (1 + (L - 1) q_t r_g).
// Exact. The factor is >= 1 - q_t >= 0 for any r_g >= -1/(L - 1); it is clamped at 0
// against rounding at that end, and formed first so that a vanishing factor never
// multiplies an overflowed product (0 * inf); an overflow is +infinity.
template <class T>
SIGPROP_HD T weight_grad_sq_norm_impl(const embedding_table<T>& t, const gradient<T>& g, int L,
                                      int d) noexcept {
    const T f = T(1) + T(L - 1) * t.same_row * g.corr;
    const T factor = f > T(0) ? f : T(0);
    return g.var * factor * T(d) * T(L);
}

}  // namespace detail

template <class T>
void validate(const embedding<T>& c) {
    detail::require_size("embedding", "tables.size()", static_cast<long long>(c.tables.size()));
    // The parameter's name is only built for a table that fails, so that the valid path
    // does not allocate.
    for (std::size_t t = 0; t < c.tables.size(); ++t) {
        const embedding_table<T>& tb = c.tables[t];
        if (detail::is_finite(tb.sigma) && tb.sigma >= T(0) && tb.same_row >= T(0) && tb.same_row <= T(1))
            continue;
        const std::string name = "tables[" + std::to_string(t) + "]";
        detail::require_nonnegative("embedding", name + ".sigma", tb.sigma);
        detail::require_probability("embedding", name + ".same_row", tb.same_row);
    }
}

/// Forward moments of the embedding output. There is no input signal: the input is token ids.
template <class T>
signal<T> forward(const embedding<T>& c) {
    validate(c);
    return detail::forward_impl(c.tables.data(), c.tables.size());
}

/// Moments of the gradient reaching every table's looked-up rows, given the gradient g at
/// the embedding output: the sum passes g on unchanged.
template <class T>
gradient<T> backward(const embedding<T>& c, const gradient<T>& g) {
    validate(c);
    detail::check_gradient("embedding", g);
    return detail::backward_impl(g);
}

/// Expected squared Frobenius norm of the gradient of table `table` for one sequence of
/// L tokens and d units, given the gradient g at the embedding output (loss sum(Y * G)).
/// g.corr must be at least -1/(L - 1), the least correlation L exchangeable tokens can have.
template <class T>
T weight_grad_sq_norm(const embedding<T>& c, const gradient<T>& g, int L, int d, std::size_t table) {
    validate(c);
    detail::check_gradient("embedding", g);
    detail::require_size("embedding", "L", L);
    detail::require_size("embedding", "d", d);
    if (table >= c.tables.size())
        detail::fail("embedding", "table", table, "[0, " + std::to_string(c.tables.size()) + ")");
    // Rounding of a caller's -1/(L - 1) is forgiven by a few units in the last place.
    if (L > 1 && g.corr * T(L - 1) < -(T(1) + T(8) * std::numeric_limits<T>::epsilon()))
        detail::fail("embedding", "g.corr", g.corr, "[-1/(L - 1), 1] with L = " + std::to_string(L));
    return detail::weight_grad_sq_norm_impl(c.tables[table], g, L, d);
}

// ---------------------------------------------------------------------------------------
// Same-row probabilities q_t (the `same_row` field of a table).

namespace detail {

// The generalised harmonic number H(V, s) = sum_{k=1}^{V} k^-s for s >= 0 and V >= 1, in
// O(1) time for any V (our derivation, standard Euler-Maclaurin). The first N - 1 = 15
// terms are summed directly (smallest first); the rest, k = N .. V, is
//   int_N^V x^-s dx + (f(N) + f(V))/2 + sum_{j=1}^{8} B_2j/(2j)! (f^(2j-1)(V) - f^(2j-1)(N))
// with f(x) = x^-s, f^(2j-1)(x) = -(s)_(2j-1) x^(-s-2j+1) ((s)_n the rising factorial).
// The first omitted term is about B_18/18! (s)_17 N^(-s-17): below 1e-21 relative for
// s = 2 and smaller for larger s, so the result is accurate to the rounding of T
// (long double included). The integral N^(1-s) (exp((1-s) l) - 1)/(1-s), l = ln(V/N), is
// written with expm1 so that it neither cancels nor divides by zero near s = 1, and
// log1p((V - N)/N) keeps l accurate for V near N. At V = N the integral is exactly 0 and
// is not formed: there (1 - s) l would be inf * 0 = NaN for s = +inf, which Zipf's 2a
// reaches when a is finite but 2a overflows (fuzz_formulas, float). Terms that underflow
// end the series (f^(k)(N) >= f^(k)(V)), which also keeps an overflowing (s)_n from
// meeting a zero power.
template <class T>
SIGPROP_HD T harmonic(std::uint64_t V, T s) noexcept {
    using std::expm1;
    using std::log1p;
    using std::pow;
    constexpr std::uint64_t N = 16;
    T sum(0);
    for (std::uint64_t k = (V < N ? V : N - 1); k >= 1; --k) sum += pow(T(k), -s);
    if (V < N) return sum;
    const T n = T(N), v = T(V);
    const T fn = pow(n, -s), fv = pow(v, -s);
    const T l = log1p(T(V - N) / n);
    const T y = (T(1) - s) * l;
    const T integral = l > T(0) ? n * fn * l * (y == T(0) ? T(1) : expm1(y) / y) : T(0);
    sum += integral + (fn + fv) / T(2);
    // B_2j / (2j)! for j = 1 .. 8, as exact integer ratios.
    constexpr long long num[8] = {1, -1, 1, -1, 1, -691, 1, -3617};
    constexpr long long den[8] = {12, 720, 30240, 1209600, 47900160, 1307674368000LL,
                                  74724249600LL, 10670622842880000LL};
    T rise = s;  // (s)_(2j-1)
    T pn = fn / n, pv = fv / v;  // x^(-s-2j+1)
    for (int j = 1; j <= 8 && pn > T(0); ++j) {
        sum -= T(num[j - 1]) / T(den[j - 1]) * rise * (pv - pn);
        rise *= (s + T(2 * j - 1)) * (s + T(2 * j));
        pn /= n * n;
        pv /= v * v;
    }
    return sum;
}

// Zipf's law p_k = k^-a / H(V, a) over k = 1 .. V: q = sum p_k^2 = H(V, 2a) / H(V, a)^2,
// divided twice by H(V, a) so that H^2 cannot overflow.
template <class T>
SIGPROP_HD T same_row_zipf_impl(std::uint64_t V, T a) noexcept {
    const T h = harmonic(V, a);
    return harmonic(V, T(2) * a) / h / h;
}

template <class T, class R>
T same_row_one_sequence(const R& seq, std::vector<std::int64_t>& ids) {
    ids.assign(std::ranges::begin(seq), std::ranges::end(seq));
    std::sort(ids.begin(), ids.end());
    // sum over distinct tokens of c (c - 1): pairs of different positions holding that token.
    std::uint64_t pairs = 0;
    for (std::size_t i = 0; i < ids.size();) {
        std::size_t j = i;
        while (j < ids.size() && ids[j] == ids[i]) ++j;
        const std::uint64_t c = j - i;
        pairs += c * (c - 1);
        i = j;
    }
    const T L = T(ids.size());
    return T(pairs) / (L * (L - T(1)));
}

}  // namespace detail

/// q for tokens drawn i.i.d. from a unigram law: sum_k p_k^2. `weights` are probabilities
/// or unnormalised frequencies (counts): the function normalises them,
/// q = sum w_k^2 / (sum w_k)^2, so they need not sum to 1. Each weight must be finite and
/// >= 0, and their sum > 0. Call as same_row_probability_unigram<double>(v).
template <class T, std::ranges::forward_range R>
T same_row_probability_unigram(const R& weights) {
    T big(0);
    std::size_t k = 0;
    for (const auto& w : weights) {
        const T x = T(w);
        detail::require_nonnegative("embedding", "weights[" + std::to_string(k++) + "]", x);
        if (x > big) big = x;
    }
    if (big == T(0)) detail::fail("embedding", "sum(weights)", big, "(0, inf)");
    // Divided by the largest weight: no overflow or underflow of the squares.
    T sum(0), sum2(0);
    for (const auto& w : weights) {
        const T x = T(w) / big;
        sum += x;
        sum2 += x * x;
    }
    return sum2 / sum / sum;
}

/// q for tokens drawn i.i.d. from Zipf's law over a vocabulary of V tokens with exponent
/// a >= 0: p_k proportional to k^-a (a = 0 is uniform, q = 1/V). O(1) for any V.
template <class T>
T same_row_probability_zipf(std::uint64_t vocab, T exponent) {
    if (vocab < 1) detail::fail("embedding", "vocab", vocab, "[1, inf)");
    detail::require_nonnegative("embedding", "exponent", exponent);
    return detail::same_row_zipf_impl(vocab, exponent);
}

/// The empirical q of a sample of token ids: the probability that two different positions
/// of one sequence hold the same id, sum_k c_k (c_k - 1) / (L (L - 1)) with c_k the count
/// of id k in the sequence, averaged over the sequences with equal weights. `tokens` is a
/// flat sample of consecutive sequences of seq_len >= 2 ids (its size a positive multiple
/// of seq_len). Real text is bursty, so this exceeds the unigram sum of p_k^2.
template <class T, std::ranges::forward_range R>
    requires std::integral<std::ranges::range_value_t<R>>
T same_row_probability_tokens(const R& tokens, std::size_t seq_len) {
    detail::require_size("embedding", "seq_len", static_cast<long long>(seq_len), 2);
    const auto n = static_cast<std::size_t>(std::ranges::distance(tokens));
    if (n == 0 || n % seq_len != 0)
        detail::fail("embedding", "tokens.size()", n,
                     "{seq_len, 2 seq_len, ...} with seq_len = " + std::to_string(seq_len));
    std::vector<std::int64_t> ids;
    T total(0);
    auto it = std::ranges::begin(tokens);
    for (std::size_t s = 0; s < n / seq_len; ++s) {
        auto next = std::ranges::next(it, static_cast<std::ptrdiff_t>(seq_len));
        total += detail::same_row_one_sequence<T>(std::ranges::subrange(it, next), ids);
        it = next;
    }
    return total / T(n / seq_len);
}

/// The same for a range of sequences of any lengths >= 2, each given equal weight.
template <class T, std::ranges::forward_range R>
    requires std::ranges::forward_range<std::ranges::range_value_t<R>> &&
             std::integral<std::ranges::range_value_t<std::ranges::range_value_t<R>>>
T same_row_probability_sequences(const R& sequences) {
    std::vector<std::int64_t> ids;
    T total(0);
    std::size_t count = 0;
    for (const auto& seq : sequences) {
        const auto len = static_cast<long long>(std::ranges::distance(seq));
        detail::require_size("embedding", "sequences[" + std::to_string(count) + "].size()", len, 2);
        total += detail::same_row_one_sequence<T>(seq, ids);
        ++count;
    }
    detail::require_size("embedding", "sequences.size()", static_cast<long long>(count));
    return total / T(count);
}

/// q of a table whose rows cover fixed blocks of n_k positions out of L = sum n_k (e.g.
/// contiguous segments of lengths n_k): sum n_k (n_k - 1) / (L (L - 1)). L >= 2.
template <class T, std::ranges::forward_range R>
    requires std::integral<std::ranges::range_value_t<R>>
T same_row_probability_counts(const R& counts) {
    T total(0);
    std::size_t k = 0;
    for (const auto& c : counts) {
        detail::require_size("embedding", "counts[" + std::to_string(k++) + "]",
                             static_cast<long long>(c), 0);
        total += T(c);
    }
    if (!(total >= T(2))) detail::fail("embedding", "sum(counts)", total, "[2, inf)");
    // Summed as (n_k / L) ((n_k - 1) / (L - 1)), products of two ratios in [0, 1]: the
    // sums of n_k^2 and L^2 overflow a float for counts near LLONG_MAX (inf / inf = NaN).
    T q(0);
    for (const auto& c : counts)
        if (c > 1) q += T(c) / total * (T(c - 1) / (total - T(1)));
    return q;
}

/// q of a segment table when each position belongs to the first of two segments with
/// probability a, independently: a^2 + (1 - a)^2 (a sum of two non-negative terms).
template <class T>
T same_row_probability_two_segments(T a) {
    detail::require_probability("embedding", "a", a);
    const T b = T(1) - a;
    return a * a + b * b;
}

/// BERT's input embedding: word, position and segment tables in this order, all with
/// standard deviation sigma (BERT initialises all three with 0.02). word_same_row is the
/// word table's q (e.g. from same_row_probability_tokens on the training text); the
/// position table has q = 0; segment_same_row defaults to two equally likely segments.
template <class T>
embedding<T> bert_embedding(T word_same_row, T segment_same_row = T(0.5), T sigma = T(0.02)) {
    embedding<T> e{{{sigma, word_same_row}, {sigma, T(0)}, {sigma, segment_same_row}}};
    validate(e);
    return e;
}

}  // namespace sigprop
