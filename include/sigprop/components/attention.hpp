#pragma once
// Single-head scaled dot-product attention (the paper's SHA) with dropout on the attention
// probabilities and no output projection. Derivations: docs/theory/attention.md.
#include <cmath>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/form.hpp"
#include "sigprop/core/moments.hpp"
#include "sigprop/detail/attention_moments.hpp"

namespace sigprop {

/// Q = X Wq, K = X Wk, V = X Wv (d_in -> d_head, weights i.i.d. N(0, sigma^2), sigma a
/// standard deviation); P = softmax over the L keys of Q K^T / sqrt(d_head); inverted
/// dropout p on every entry of P; output P V. The input must have mean 0 (attention
/// inputs are LayerNorm outputs); a nonzero mean is rejected.
template <class T>
struct attention {
    int d_in{1};
    int d_head{1};
    int L{2};
    T sigma_q{1};
    T sigma_k{1};
    T sigma_v{1};
    T p{0};
    sigprop::form form{sigprop::form::best};
};

namespace detail {

/// corr = num / den for bracketed moments that share one scale; den <= 0 means the
/// quantity vanishes identically and `fallback` is its limit.
template <class T>
SIGPROP_HD T attention_corr(const T& num, const T& den, const T& fallback) noexcept {
    if (!(den > T(0))) return fallback;
    const T c = num / den;
    return c > T(1) ? T(1) : (c < T(-1) ? T(-1) : c);
}

/// The forward moments from the brackets var / scale and cov / scale (mean 0). An
/// overflowed var bracket comes from the peaky-softmax term e^sig, which outgrows the
/// covariance's e^rho (rho < sig): the correlation's limit is 0. The variance is capped at
/// scale * cap, a bound on the true value (best_var_cap); the correlation is the ratio of
/// the uncapped brackets, so that the cap changes nothing but the variance.
template <class T>
SIGPROP_HD signal<T> attention_signal(const T& scale, const T& vb, const T& cb, const T& cap) noexcept {
    signal<T> y;
    y.mean = T(0);
    y.var = vb > T(0) ? mul0(scale, min_of(cap, vb)) : T(0);
    y.corr = is_finite(vb) ? attention_corr(cb, vb, T(1)) : T(0);
    return y;
}

/// The same without a cap (the paper's form, and callers that bound nothing).
template <class T>
SIGPROP_HD signal<T> attention_signal(const T& scale, const T& vb, const T& cb) noexcept {
    return attention_signal(scale, vb, cb, T(1) / T(0));
}

/// A bound on the form::best forward variance bracket (units of m_v s2, see below) of a
/// query row attending to n keys under dropout p, inv = 1/(1-p): n inv, for any scores
/// (our derivation). Given X and P, E_Wv y^2 = sigma_v^2 |sum_j Pd_j X_j|^2 per output
/// unit; the dropout masks (keep 1 - p, scale inv) average this to
/// sigma_v^2 (|sum_j P_j X_j|^2 + k sum_j P_j^2 |X_j|^2), k = p inv. P is a probability
/// vector, so by convexity |sum_j P_j X_j|^2 <= sum_j P_j |X_j|^2, and P_j^2 <= P_j <= 1:
/// the whole is at most sigma_v^2 (1 + k) sum_j |X_j|^2, whose mean is
/// sigma_v^2 inv n d_in (mu^2 + s2). With mu = 0 (the formula's own assumption; the
/// components reject mu != 0) that is n inv times m_v s2 = d_in sigma_v^2 s2. The
/// delta-method terms e^sig of best_var_bracket grow without bound once e^{2 sig} << n
/// fails (2e29 instead of at most 16 at d_in = 8, n = 2, S = 64); the cap is met only
/// there (at zero scores the bracket is r (1 + k/n) + (1 - r) inv/n <= inv, and n >= 2),
/// and a prediction above a bound of the truth is never closer to it than the bound is.
template <class T>
SIGPROP_HD T best_var_cap(const T& n, const T& inv) noexcept {
    return n * inv;
}

/// The gradient moments from the brackets var / scale and cov / scale; `fallback` is the
/// correlation where the var bracket overflowed.
template <class T>
SIGPROP_HD gradient<T> attention_gradient(const T& scale, const T& vb, const T& cb, const T& rg,
                                          const T& fallback) noexcept {
    gradient<T> out;
    out.var = vb > T(0) ? mul0(scale, vb) : T(0);
    out.corr = is_finite(vb) ? attention_corr(cb, vb, rg) : fallback;
    return out;
}

/// The form::best forward variance bracket (units of m_v s2, see below) of one query row
/// attending to n keys with E sum P^2 = sp; k = p/(1-p), d = d_in, r the value correlation.
template <class T>
SIGPROP_HD T best_var_bracket(const T& d, const T& n, const T& k, const T& r, const T& sp, const T& sig,
                              const T& e_sig) noexcept {
    const T tilt = max_of(T(0), T(1) - T(2) * e_sig / n);
    const T w = (d - T(1)) * sp + mul0(sig, tilt) + mul0(e_sig, T(1) + sig) / n + mul0(k * sp, d + T(4) * sig);
    return r * (T(1) + k * sp) + mul0(T(1) - r, w) / d;
}

/// The form::best forward covariance bracket of two query rows sharing n keys, with the
/// given tilt (1 - 2 e^sig/n)_+ (or its causal version).
template <class T>
SIGPROP_HD T best_cov_bracket(const T& d, const T& n, const T& r, const T& rho, const T& e_rho,
                              const T& tilt) noexcept {
    const T wc = mul0(rho, tilt) + mul0(e_rho, d + rho) / n;
    return r + mul0(T(1) - r, wc) / d;
}

/// The softmax averages that the form::best backward needs (see below): the bidirectional
/// head takes them from score_statistics, the causal head from causal_statistics.
template <class T>
struct backward_softmax {
    T p2;        ///< E sum_j P_ij^2, averaged over the rows
    T p2q;       ///< the same for the softmax-gradient rows (= p2 without the mask)
    T col2;      ///< E c^2, the averaged squared column sum
    T coupling;  ///< Gram / key-difference coupling (1-r)(1-h)/d_in
    T h;         ///< 1/L (H_L/L causal)
    T h_r;       ///< (1 - 2r) h
    T tilt;      ///< the K path's key-norm tilt per unit of r_g (1-r) (column_spread)
};

/// E c^2 = pairs e^rho col + P2 (capped at L: a column sum lies in [0, L]) and the K
/// path's tilt, from the small-score weight `pairs` of the column's query pairs: sum over
/// i != i' of E[P_ij P_i'j] e^-rho, which is 1 - 1/L bidirectional and 2 - 2 H_L/L causal
/// (key j is seen by the L - j + 1 queries i >= j, with weights 1/i).
template <class T>
SIGPROP_HD void set_columns(backward_softmax<T>& sm, int d_in, int d_head, const T& L, const T& pairs,
                            const T& r, const attention_scores<T>& sc) noexcept {
    const key_spread<T> ks = column_spread(d_in, d_head, sm.h, r, r, sc.S, sc.e_sig);
    sm.col2 = min_of(L, mul0(mul0(pairs, sc.e_rho), ks.col) + sm.p2);
    // |sum_i P_ij Q'_i|^2 <= c_j sum_i P_ij |Q'_i|^2 (Cauchy-Schwarz): the tilt is at most
    // (1 - r) E c^2 in these units, which also keeps it finite when S overflows.
    sm.tilt = min_of((T(1) - r) * sm.col2, mul0(pairs, ks.tilt));
}

/// backward_softmax of the bidirectional head (d_in, d_head, L) for input correlation r.
template <class T>
SIGPROP_HD backward_softmax<T> bidirectional_softmax(int d_in, int d_head, int L, const T& r,
                                                     const attention_scores<T>& sc) noexcept {
    const T d = T(d_in), n = T(L);
    backward_softmax<T> sm{sc.sum_p2, sc.sum_p2, T(0), (T(1) - r) * (n - T(1)) / (n * d), T(1) / n,
                           (T(1) - T(2) * r) / n, T(0)};
    set_columns(sm, d_in, d_head, n, T(1) - T(1) / n, r, sc);
    return sm;
}

/// The V path's variance and covariance brackets (units of U, see below).
template <class T>
SIGPROP_HD T v_path_var(const T& rg, const T& k, const T& inv, const backward_softmax<T>& sm) noexcept {
    return rg * (sm.col2 + k * sm.p2) + (T(1) - rg) * sm.p2 * inv;
}
template <class T>
SIGPROP_HD T v_path_cov(const T& rg, const T& n, const backward_softmax<T>& sm) noexcept {
    return rg * (T(1) - (sm.col2 - T(1)) / (n - T(1))) + (T(1) - rg) * (T(1) - sm.p2) / (n - T(1));
}

/// The form::best backward of one head in units of U = scale (see below), given the score
/// variance S and the softmax averages.
template <class T>
SIGPROP_HD gradient<T> best_backward(const T& scale, const T& r, const T& rg, const T& n, const T& p,
                                     const T& S, const backward_softmax<T>& sm) noexcept {
    const T inv = T(1) / (T(1) - p);
    const T k = p * inv;
    const T drop = sm.p2q * (inv - r);
    const T v = v_path_var(rg, k, inv, sm);
    const T kt = rg * (T(1) - r) * sm.tilt;
    const T b = (T(1) - r) * (drop + sm.coupling) + drop + rg * r * (T(1) - r) * (sm.col2 - sm.p2) + kt;
    const T vc = v_path_cov(rg, n, sm);
    const T bc = rg * (T(1) - r) * (sm.h_r + sm.coupling) - kt * sm.h;
    const T vb = v + mul0(S, b);
    const T cb = vc + mul0(S, bc);
    // With S overflowed the S terms dominate both moments: the limit is their ratio.
    const T fallback = is_finite(vb) ? rg : attention_corr(bc, b, rg);
    return attention_gradient(scale, vb, cb, rg, fallback);
}

// Forward, form::paper: REFERENCE.md section 2 (paper Table 1), written as
// var = m_v s2 [r + ((1-r)^2 (L-1) S/d_in + e^{(1-r)S}/(1-p) (4 (1-r)^2 S/d_in + 1 - r)) / L],
// cov = m_v s2 [r + (2 (1-r)^2 S/d_in + 1 - r) / L], m_v = d_in sigma_v^2.
//
// Forward, form::best (our derivation, docs/theory/attention.md): condition on everything
// but Wv, so E[Y_i . Y_k] = sigma_v^2 E[|sum_j Pd_ij X_j|^2] (i = k) or the cross term.
// Split X_j = s (sqrt(r) z0 + sqrt(1-r) z_j). The shared part gives r (1 + p/(1-p) E sum P^2)
// (dropout breaks the row sum), the token part gives (1-r) W / d_in with
// W = E|sum_j Pd_ij z_j|^2. Given the query, the key scores are y . z_j with |y|^2 = sig:
// the softmax tilts the keys towards y, and a delta-method expansion in 1/L gives
//   W = (d_in - 1) E sum P^2 + sig (1 - 2 e^sig/L) + e^sig (1 + sig)/L + p/(1-p) E sum P^2 (d_in + 4 sig),
//   W_cov = rho (1 - 2 e^sig/L) + e^rho (d_in + rho)/L   (two queries share the keys).
// Assumptions: Gaussian input with mean 0, e^{2 sig} << L; the self-key and the
// O(S/(d_in L)) couplings are dropped.
//
// sc: the score statistics of c for x (score_statistics), passed in so that callers that
// already hold them (models/predict.hpp) do not evaluate them again.
template <class T>
SIGPROP_HD signal<T> forward_impl(const attention<T>& c, const signal<T>& x, const attention_scores<T>& sc) noexcept {
    using std::sqrt;
    const T r = x.corr;
    const T d = T(c.d_in);
    const T n = T(c.L);
    const T inv = T(1) / (T(1) - c.p);
    const T a = mul0(c.sigma_v, sqrt(x.var));  // sigma_v = 0 silences an overflowed input (no 0 * inf)
    const T scale = d * a * a;  // m_v s2
    T vb, cb;
    if (c.form == sigprop::form::paper) {
        const T u = (T(1) - r) * (T(1) - r);
        vb = r + (mul0(u * (n - T(1)) / d, sc.S) +
                  mul0(sc.e_sig * inv, mul0(T(4) * u / d, sc.S) + (T(1) - r))) / n;
        cb = r + (mul0(T(2) * u / d, sc.S) + (T(1) - r)) / n;
    } else {
        const T tilt = max_of(T(0), T(1) - T(2) * sc.e_sig / n);
        vb = best_var_bracket(d, n, c.p * inv, r, sc.sum_p2, sc.sig, sc.e_sig);
        cb = best_cov_bracket(d, n, r, sc.rho, sc.e_rho, tilt);
        return attention_signal(scale, vb, cb, best_var_cap(n, inv));
    }
    return attention_signal(scale, vb, cb);
}

template <class T>
SIGPROP_HD signal<T> forward_impl(const attention<T>& c, const signal<T>& x) noexcept {
    return forward_impl(c, x, score_statistics(c.d_in, c.L, x.var, x.corr, c.sigma_q, c.sigma_k));
}

// Backward, form::paper: REFERENCE.md section 2; only the path through V:
// g var = U (1 + (L-1) r_g (1-p)) / (L (1-p)), g cov = U (1 + (L-1) r_g) / L,
// U = s2_g d_head sigma_v^2.
//
// Backward, form::best (our derivation, docs/theory/attention.md): dX = dQ Wq^T + dK Wk^T +
// dV Wv^T; the cross terms between the three paths are O(1/d_in) and dropped. In units of U:
//   V path  r_g (E c^2 + p/(1-p) E sum P^2) + (1 - r_g) E sum P^2 / (1-p)   (c: column sum of P)
//   Q path  S (1-r) [E sum P^2 (1/(1-p) - r) + (1-r)(L-1)/(L d_in)]
//   K path  S [E sum P^2 (1/(1-p) - r) + r_g r (1-r)(E c^2 - E sum P^2) + r_g (1-r) tilt]
// The (L-1)/(L d_in) term is the coupling between the Gram matrix X X^T and the key
// differences, which dominates the Q path when L > d_in. E c^2 and tilt carry the spread
// of the key norms (column_spread). Covariances (i != k):
//   V path  r_g (1 - (E c^2 - 1)/(L-1)) + (1 - r_g)(1 - E sum P^2)/(L-1)
//   Q, K    S r_g (1-r) [(1-r)(1/L + (L-1)/(L d_in)) - r/L - tilt/L]
// (the key gradients of a sequence sum to 0, so the K path's part is -1/L of its own).
//
// sc: as for forward_impl (form::best only; form::paper does not read it).
template <class T>
SIGPROP_HD gradient<T> backward_impl(const attention<T>& c, const signal<T>& x, const gradient<T>& g,
                                     const attention_scores<T>& sc) noexcept {
    using std::sqrt;
    const T r = x.corr;
    const T rg = g.corr;
    const T n = T(c.L);
    const T a = mul0(c.sigma_v, sqrt(g.var));  // g.var may be an overflowed +inf (multi-head)
    const T scale = T(c.d_head) * a * a;  // U
    if (c.form == sigprop::form::paper) {
        const T inv = T(1) / (T(1) - c.p);
        const T vb = (T(1) + (n - T(1)) * rg * (T(1) - c.p)) * inv / n;
        const T cb = (T(1) + (n - T(1)) * rg) / n;
        return attention_gradient(scale, vb, cb, rg, rg);
    }
    return best_backward(scale, r, rg, n, c.p, sc.S, bidirectional_softmax(c.d_in, c.d_head, c.L, r, sc));
}

template <class T>
SIGPROP_HD gradient<T> backward_impl(const attention<T>& c, const signal<T>& x, const gradient<T>& g) noexcept {
    return backward_impl(c, x, g,
                         c.form == sigprop::form::paper
                             ? attention_scores<T>{}
                             : score_statistics(c.d_in, c.L, x.var, x.corr, c.sigma_q, c.sigma_k));
}

}  // namespace detail

template <class T>
void validate(const attention<T>& c) {
    detail::require_size("attention", "d_in", c.d_in);
    detail::require_size("attention", "d_head", c.d_head);
    detail::require_size("attention", "L", c.L, 2);
    detail::require_nonnegative("attention", "sigma_q", c.sigma_q);
    detail::require_nonnegative("attention", "sigma_k", c.sigma_k);
    detail::require_nonnegative("attention", "sigma_v", c.sigma_v);
    detail::require_drop_probability("attention", "p", c.p);
    detail::require_form("attention", c.form, c.form == form::best || c.form == form::paper,
                         "{best, paper}");
}

namespace detail {
template <class T>
void check_attention_input(const signal<T>& x) {
    check_signal("attention", x);
    if (x.mean != T(0)) fail("attention", "x.mean", x.mean, "{0}");
}
}  // namespace detail

/// Forward moments of the output for input moments x (x.mean must be 0).
template <class T>
signal<T> forward(const attention<T>& c, const signal<T>& x) {
    validate(c);
    detail::check_attention_input(x);
    return detail::forward_impl(c, x);
}

/// Gradient moments at the input, given the input moments x and the gradient g at the output.
template <class T>
gradient<T> backward(const attention<T>& c, const signal<T>& x, const gradient<T>& g) {
    validate(c);
    detail::check_attention_input(x);
    detail::check_gradient("attention", g);
    return detail::backward_impl(c, x, g);
}

}  // namespace sigprop
