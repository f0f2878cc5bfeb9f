#pragma once
// Multi-head self-attention with an output projection, optionally causal (decoder).
// Derivations: docs/theory/multi_head_attention.md.
#include <cmath>
#include <string>

#include "sigprop/components/attention.hpp"
#include "sigprop/core/errors.hpp"
#include "sigprop/core/form.hpp"
#include "sigprop/core/moments.hpp"
#include "sigprop/detail/attention_moments.hpp"

namespace sigprop {

/// `heads` independent heads of width d_head = d_model / heads, each the single-head
/// attention of sigprop::attention (Q, K, V projections d_model -> d_head with standard
/// deviations sigma_q, sigma_k, sigma_v; softmax of Q K^T / sqrt(d_head); inverted dropout
/// p on the probabilities), concatenated to d_model units and projected by a d_model x
/// d_model matrix Wo with standard deviation sigma_o (no biases). causal = true masks the
/// scores so that token i (1-based) attends to keys 1..i only. The input must have mean 0.
template <class T>
struct multi_head_attention {
    int d_model{1};
    int heads{1};
    int L{2};
    T sigma_q{1};
    T sigma_k{1};
    T sigma_v{1};
    T sigma_o{1};
    T p{0};
    bool causal{false};
    sigprop::form form{sigprop::form::best};
};

namespace detail {

/// One head of c, as the single-head component.
template <class T>
SIGPROP_HD attention<T> head_of(const multi_head_attention<T>& c) noexcept {
    return {c.d_model, c.d_model / c.heads, c.L, c.sigma_q, c.sigma_k, c.sigma_v, c.p, c.form};
}

/// Softmax statistics of causal attention averaged over the L positions (our derivation,
/// docs/theory/multi_head_attention.md). Row i (1-based) is a softmax over i keys, so its
/// E[sum_j P_ij^2] is score_statistics' expression with L -> i, except row 1, which is
/// exactly 1 (one key).
template <class T>
struct causal_scores {
    T h;        ///< H_L / L: the average of 1/i
    T sum_p2;   ///< average over rows (= over columns) of E sum_j P_ij^2
    T sum_p2q;  ///< average of E sum_j P_ij^2 (1 - 1/i): the softmax-gradient rows (row 1 has none)
    T var_bracket;  ///< forward: average over rows of var_i / (m_v s2) (form::best)
};

// The per-row forward bracket of form::best (see attention.hpp) with L -> i:
//   vb_i = r (1 + k P2_i) + (1-r)/d [(d-1) P2_i + sig (1 - 2 e^sig/i)_+ + e^sig (1+sig)/i + k P2_i (d + 4 sig)],
// and row 1 exactly 1/(1-p) (Y_1 = m V_1/(1-p) whatever the scores). O(L) work, no
// allocation; the harmonic number H_L = sum 1/i comes out of the same loop.
template <class T>
SIGPROP_HD causal_scores<T> causal_statistics(int d_in, int L, T r, T p,
                                              const attention_scores<T>& sc) noexcept {
    using std::exp;
    const T d = T(d_in);
    const T inv = T(1) / (T(1) - p);
    const T k = p * inv;
    const T em1 = sc.e_sig - T(1);
    T sum_inv = T(1), sp = T(1), spq = T(0), vb = inv;  // row 1
    for (int i = 2; i <= L; ++i) {
        const T n = T(i);
        const T sp_i = softmax_sum_p2(n, sc.e_sig, em1);
        sum_inv += T(1) / n;
        sp += sp_i;
        spq += sp_i * (T(1) - T(1) / n);
        vb += best_var_bracket(d, n, k, r, sp_i, sc.sig, sc.e_sig);
    }
    const T nl = T(L);
    causal_scores<T> s{};
    s.h = sum_inv / nl;
    s.sum_p2 = sp / nl;
    s.sum_p2q = spq / nl;
    s.var_bracket = vb / nl;
    return s;
}

// Forward of one causal head, averaged over positions as the estimator pools tokens.
// var: the average of the per-row brackets. cov: the estimator averages C_ij over the
// L (L-1) ordered pairs; rows i < j share keys 1..i, so the e^rho (d + rho)/L term of the
// single head becomes e^rho (d + rho)/max(i, j), whose pair average is
// 2 (L - H_L) / (L (L-1)), and the tilt (1 - e^sig (1/i + 1/j)) averages to
// 1 - 2 e^sig H_L / L (clamped at 0 after averaging: an approximation where it binds).
// Exact when the scores vanish (sigma_q sigma_k = 0):
//   var = m_v s2 [r (1 + k H_L/L) + (1-r) H_L / ((1-p) L)],
//   cov = m_v s2 [r + (1-r) 2 (L - H_L) / (L (L-1))].
//
// sc, cs: the statistics of c for x (score_statistics, causal_statistics), passed in so
// that callers that already hold them (models/predict.hpp) do not evaluate them again.
template <class T>
SIGPROP_HD signal<T> causal_head_forward(const attention<T>& c, const signal<T>& x, const attention_scores<T>& sc,
                                         const causal_scores<T>& cs) noexcept {
    using std::sqrt;
    const T r = x.corr;
    const T d = T(c.d_in);
    const T nl = T(c.L);
    const T a = mul0(c.sigma_v, sqrt(x.var));  // sigma_v = 0 silences an overflowed input (no 0 * inf)
    const T scale = d * a * a;
    const T vb = cs.var_bracket;
    const T tilt = max_of(T(0), T(1) - T(2) * sc.e_sig * cs.h);
    const T pairs = T(2) * (nl - cs.h * nl) / (nl * (nl - T(1)));
    const T wc = mul0(sc.rho, tilt) + mul0(sc.e_rho, d + sc.rho) * pairs;
    const T cb = r + mul0(T(1) - r, wc) / d;
    // Row i's bracket is at most best_var_cap(i, inv); their average, (L + 1)/2 inv.
    return attention_signal(scale, vb, cb, best_var_cap((nl + T(1)) / T(2), T(1) / (T(1) - c.p)));
}

template <class T>
SIGPROP_HD signal<T> causal_head_forward(const attention<T>& c, const signal<T>& x) noexcept {
    const auto sc = score_statistics(c.d_in, c.L, x.var, x.corr, c.sigma_q, c.sigma_k);
    return causal_head_forward(c, x, sc, causal_statistics(c.d_in, c.L, x.corr, c.p, sc));
}

// Backward of one causal head, averaged over input positions (our derivation; the
// single-head form::best of attention.hpp with the causal averages substituted). Key j
// receives gradient from the queries i >= j: its column sum c_j = sum_{i>=j} P_ij has
// E c_j^2 ~ (H_L - H_{j-1})^2 at small scores, and sum_j (H_L - H_{j-1})^2 = 2L - H_L,
// so the average E c^2 is 2 - H_L/L (1 without the mask). In units of U:
//   V path  r_g (col2 + k P2) + (1 - r_g) P2/(1-p)            (exact at zero scores)
//   Q path  S (1-r) [P2q (1/(1-p) - r) + (1-r)(1 - H_L/L)/d_in]
//   K path  S [P2q (1/(1-p) - r) + r_g r (1-r)(col2 - P2)]
// P2q weights row i by (1 - 1/i): the softmax gradient P (dP - sum P dP) removes the
// attention-weighted mean of the keys, which for i keys leaves (i - 1)/i of their spread
// (exact at zero scores; row 1 has no softmax gradient at all). Covariances as for one
// head with 1/L -> H_L/L. Approximation: couplings of order S/(d_in L) and the self-key
// are dropped, as for the single head, and the delta-method P2_i needs e^{2 sig} << i.
/// backward_softmax of the causal head (d_in, d_head, L) for input correlation r; E c^2
/// averages e^rho (2 - 2 H_L/L) + sum_p2 over the keys, times the key-norm spread.
template <class T>
SIGPROP_HD backward_softmax<T> causal_softmax(int d_in, int d_head, int L, const T& r, const attention_scores<T>& sc,
                                              const causal_scores<T>& cs) noexcept {
    backward_softmax<T> sm{cs.sum_p2, cs.sum_p2q, T(0), (T(1) - r) * (T(1) - cs.h) / T(d_in), cs.h,
                           (T(1) - T(2) * r) * cs.h, T(0)};
    set_columns(sm, d_in, d_head, T(L), T(2) - T(2) * cs.h, r, sc);
    return sm;
}

// sc, cs: as for causal_head_forward.
template <class T>
SIGPROP_HD gradient<T> causal_head_backward(const attention<T>& c, const signal<T>& x, const gradient<T>& g,
                                            const attention_scores<T>& sc, const causal_scores<T>& cs) noexcept {
    using std::sqrt;
    const T r = x.corr;
    const T a = mul0(c.sigma_v, sqrt(g.var));  // g.var may be an overflowed +inf
    const T scale = T(c.d_head) * a * a;
    return best_backward(scale, r, g.corr, T(c.L), c.p, sc.S, causal_softmax(c.d_in, c.d_head, c.L, r, sc, cs));
}

template <class T>
SIGPROP_HD gradient<T> causal_head_backward(const attention<T>& c, const signal<T>& x,
                                            const gradient<T>& g) noexcept {
    const auto sc = score_statistics(c.d_in, c.L, x.var, x.corr, c.sigma_q, c.sigma_k);
    return causal_head_backward(c, x, g, sc, causal_statistics(c.d_in, c.L, x.corr, c.p, sc));
}

// Forward (our derivation). Heads: given X, the heads use independent zero-mean weights,
// so two different heads' outputs are uncorrelated and every unit of the concatenation
// has one head's moments (0, var_h, corr_h). Output projection: exactly a linear layer
// on a mean-0 input, var = d_model sigma_o^2 var_h, correlation unchanged.
template <class T>
SIGPROP_HD signal<T> forward_impl(const multi_head_attention<T>& c, const signal<T>& x) noexcept {
    using std::sqrt;
    const attention<T> h = head_of(c);
    signal<T> y = c.causal ? causal_head_forward(h, x) : forward_impl(h, x);
    const T a = mul0(c.sigma_o, sqrt(y.var));
    y.var = T(c.d_model) * a * a;
    return y;
}

// Backward (our derivation). Through Wo: G Wo^T has variance d_model sigma_o^2 s2_g and
// correlation r_g (linear layer). Each head's input gradient is its single-head backward
// for that incoming gradient. The heads' contributions to dX are uncorrelated (flipping
// the sign of head h's block of Wo flips head h's contribution and nothing else), so
// dX = sum_h dX_h has `heads` times one head's variance and covariance.
template <class T>
SIGPROP_HD gradient<T> backward_impl(const multi_head_attention<T>& c, const signal<T>& x,
                                     const gradient<T>& g) noexcept {
    using std::sqrt;
    const attention<T> h = head_of(c);
    const T a = mul0(c.sigma_o, sqrt(g.var));
    const gradient<T> gc{T(c.d_model) * a * a, g.corr};
    gradient<T> out = c.causal ? causal_head_backward(h, x, gc) : backward_impl(h, x, gc);
    out.var = T(c.heads) * out.var;
    return out;
}

// Position-resolved causal moments of one head, in units of m_v s2 (row i, 1-based).
template <class T>
SIGPROP_HD T causal_row_bracket(const attention<T>& c, T r, const attention_scores<T>& sc, int i) noexcept {
    const T inv = T(1) / (T(1) - c.p);
    if (i == 1) return inv;
    const T n = T(i);
    const T sp = softmax_sum_p2(n, sc.e_sig, sc.e_sig - T(1));
    return best_var_bracket(T(c.d_in), n, c.p * inv, r, sp, sc.sig, sc.e_sig);
}

}  // namespace detail

template <class T>
void validate(const multi_head_attention<T>& c) {
    constexpr const char* name = "multi_head_attention";
    detail::require_size(name, "d_model", c.d_model);
    detail::require_size(name, "heads", c.heads);
    if (c.d_model % c.heads != 0)
        detail::fail(name, "heads", c.heads,
                     "{divisors of d_model = " + std::to_string(c.d_model) + "} (d_model must be divisible by heads)");
    detail::require_size(name, "L", c.L, 2);
    detail::require_nonnegative(name, "sigma_q", c.sigma_q);
    detail::require_nonnegative(name, "sigma_k", c.sigma_k);
    detail::require_nonnegative(name, "sigma_v", c.sigma_v);
    detail::require_nonnegative(name, "sigma_o", c.sigma_o);
    detail::require_drop_probability(name, "p", c.p);
    if (c.causal)
        detail::require_form(name, c.form, c.form == form::best, "{best} (causal attention has no published form)");
    else
        detail::require_form(name, c.form, c.form == form::best || c.form == form::paper, "{best, paper}");
}

namespace detail {
template <class T>
void check_mha_input(const signal<T>& x) {
    check_signal("multi_head_attention", x);
    if (x.mean != T(0)) fail("multi_head_attention", "x.mean", x.mean, "{0}");
}
template <class T>
void check_position(const multi_head_attention<T>& c, const char* param, int i) {
    if (i < 1 || i > c.L) fail("multi_head_attention", param, i, "[1, L = " + std::to_string(c.L) + "]");
}
}  // namespace detail

/// Forward moments of the output, pooled over the L positions like the estimator
/// (x.mean must be 0). For causal attention these are sequence averages; see variance_at.
template <class T>
signal<T> forward(const multi_head_attention<T>& c, const signal<T>& x) {
    validate(c);
    detail::check_mha_input(x);
    return detail::forward_impl(c, x);
}

/// Gradient moments at the input (pooled over positions), given the input moments x and
/// the gradient g at the output.
template <class T>
gradient<T> backward(const multi_head_attention<T>& c, const signal<T>& x, const gradient<T>& g) {
    validate(c);
    detail::check_mha_input(x);
    detail::check_gradient("multi_head_attention", g);
    return detail::backward_impl(c, x, g);
}

/// Output variance at position i (1-based). Causal: row i averages i keys, so at small
/// query/key scale var_i = d sigma_o^2 m_v s2 [r (1 + k/i) + (1-r)/((1-p) i)]; the mean
/// over i is forward(c, x).var. Without the mask it is forward(c, x).var for every i.
template <class T>
T variance_at(const multi_head_attention<T>& c, const signal<T>& x, int i) {
    validate(c);
    detail::check_mha_input(x);
    detail::check_position(c, "i", i);
    if (!c.causal) return forward(c, x).var;
    using std::sqrt;
    const auto h = detail::head_of(c);
    const auto sc = detail::score_statistics(h.d_in, h.L, x.var, x.corr, h.sigma_q, h.sigma_k);
    // mul0 twice: sigma_o sigma_v may overflow while x.var = 0 (inf * 0 = NaN, fuzz_formulas).
    const T a = detail::mul0(detail::mul0(c.sigma_o, c.sigma_v), sqrt(x.var));
    const T vb = detail::min_of(detail::best_var_cap(T(i), T(1) / (T(1) - c.p)),
                                detail::causal_row_bracket(h, x.corr, sc, i));
    const T da = T(c.d_model) * a;
    return vb > T(0) ? detail::mul0(da * da, vb) : T(0);
}

/// Output covariance between positions i != j (1-based, same unit). Causal: the rows share
/// keys 1..min(i, j), so at small query/key scale
/// cov_ij = d sigma_o^2 m_v s2 [r + (1-r)/max(i, j)]. Outside the regime of the form the
/// bracket is capped at sqrt(i j)/(1 - p): by Cauchy-Schwarz |cov_ij| <= sqrt(var_i var_j),
/// and var_i is at most i/(1 - p) in the same units (best_var_cap).
template <class T>
T covariance_at(const multi_head_attention<T>& c, const signal<T>& x, int i, int j) {
    validate(c);
    detail::check_mha_input(x);
    detail::check_position(c, "i", i);
    detail::check_position(c, "j", j);
    if (i == j) detail::fail("multi_head_attention", "j", j, "[1, L] without i = " + std::to_string(i));
    if (!c.causal) {
        const auto y = forward(c, x);
        return detail::mul0(y.corr, y.var);
    }
    using std::sqrt;
    const auto h = detail::head_of(c);
    const auto sc = detail::score_statistics(h.d_in, h.L, x.var, x.corr, h.sigma_q, h.sigma_k);
    const T d = T(c.d_model);
    const T tilt = detail::max_of(T(0), T(1) - sc.e_sig * (T(1) / T(i) + T(1) / T(j)));
    const T cap = sqrt(T(i) * T(j)) / (T(1) - c.p);
    const T cb = detail::min_of(cap, detail::best_cov_bracket(d, T(i > j ? i : j), x.corr, sc.rho, sc.e_rho, tilt));
    const T da = d * detail::mul0(detail::mul0(c.sigma_o, c.sigma_v), sqrt(x.var));  // as in variance_at
    return detail::mul0(da * da, cb);
}

}  // namespace sigprop
