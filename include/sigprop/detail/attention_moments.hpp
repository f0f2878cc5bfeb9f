#pragma once
// Statistics of the attention probabilities of sigprop::attention that both the forward
// and the backward moments need. Derivations: docs/theory/attention.md.
#include <cmath>

#include "sigprop/core/config.hpp"

namespace sigprop::detail {

/// a * b with 0 * anything = 0, so that a vanishing factor (r = 1, sigma = 0) wins over an
/// overflowed one instead of producing NaN.
template <class T>
SIGPROP_HD T mul0(const T& a, const T& b) noexcept {
    return (a == T(0) || b == T(0)) ? T(0) : a * b;
}

template <class T>
SIGPROP_HD T min_of(const T& a, const T& b) noexcept { return b < a ? b : a; }

template <class T>
SIGPROP_HD T max_of(const T& a, const T& b) noexcept { return a < b ? b : a; }

/// E[sum_j P_ij^2] of a softmax over n keys whose key-specific scores are i.i.d. with
/// exp(variance) = e_sig and em1 = e_sig - 1 (the delta-method expression of
/// score_statistics below, with its clamps).
template <class T>
SIGPROP_HD T softmax_sum_p2(const T& n, const T& e_sig, const T& em1) noexcept {
    const T shrink = max_of(T(0.5), T(1) - mul0(em1, T(2) * em1 + T(1)) / n);
    return min_of(T(1), e_sig / n * shrink);
}

/// The softmax statistics of one attention head, for input variance s2 and token
/// correlation r (input mean 0).
template <class T>
struct attention_scores {
    T S;       ///< score variance Var(A_ij) = (d_in s2 sigma_q sigma_k)^2
    T sig;     ///< key-specific score variance (1 - r) S: what the softmax responds to
    T rho;     ///< covariance of the key-specific scores of two queries, r (1 - r) S
    T e_sig;   ///< exp(sig)
    T e_rho;   ///< exp(rho)
    T sum_p2;  ///< E[sum_j P_ij^2] (the same for a row or a column)
};

// Our derivation (docs/theory/attention.md, "softmax statistics"). Given the query, the
// key-specific scores of the L keys are i.i.d. N(0, sig) (the part of the scores shared by
// all keys cancels in the softmax). A delta-method expansion of e^{a_j} / sum_l e^{a_l} to
// second order in the fluctuation of the denominator gives
//   E[sum_j P_ij^2] = (e^sig / L) (1 - (e^sig - 1)(2 e^sig - 1) / L),
// exact at sig = 0 (1/L) and accurate while e^{2 sig} << L. Outside that range the
// correction factor is kept at >= 1/2 and the result capped at 1 (a one-hot softmax), so
// the value stays in [1/L, 1] without NaN. The column sums (the attention a key receives)
// also depend on the head's width: column_spread below.
template <class T>
SIGPROP_HD attention_scores<T> score_statistics(int d_in, int L, T s2, T r, T sigma_q,
                                                T sigma_k) noexcept {
    using std::exp;
    using std::expm1;
    attention_scores<T> a{};
    const T n = T(L);
    const T amp = mul0(mul0(T(d_in), s2), mul0(sigma_q, sigma_k));
    a.S = amp * amp;
    a.sig = mul0(T(1) - r, a.S);
    a.rho = mul0(r * (T(1) - r), a.S);
    const T em1 = expm1(a.sig);
    a.e_sig = em1 + T(1);
    a.sum_p2 = softmax_sum_p2(n, a.e_sig, em1);
    a.e_rho = exp(a.rho);
    return a;
}

/// What the attention a key receives depends on beyond e^rho: see column_spread.
template <class T>
struct key_spread {
    T col;   ///< factor on the pair part e^rho of E c^2 (c: a key's column sum)
    T tilt;  ///< the K path's tilt term per unit of r_g (1 - r_k) and of the column pairs
};

// Our derivation (docs/theory/attention.md, "Key norms and the column sums"), for queries
// from a stream of correlation r_q and keys from one of correlation r_k (both r for
// self-attention; negative correlations are taken as 0, the derivation splits a token
// into a shared and a specific part). A key's column sum c_j averages e^{A_ij} over the
// queries; given the key, the queries' specific parts average to
// e^{(1-r_q) v_q |K'_j|^2 / (2 d_head)}, so a key with a longer specific part K'_j
// receives more attention. Beyond the shared query's e^rho, E c^2 gains exp(D): the
// Gaussian average over K'_j, the shared query Q_c and the sequence's normalisation
// sum_j c_j = L, to second order in S / d_head:
//   D = (1-r_k)^2 S^2 / d_head [w (1-r_q)^2 / 2 + 3 r_q (1-r_q) + r_q^2],
//   w = 1 + (d_head + 1)/d_in   (the Wishart spread of |K'_j|^2 = |X'_j Wk|^2),
// and the rows' own normalisation, at order h = 1/L (H_L/L causal), gives
// f = 1 - (e^rho - 1)(2 e^sig - 1) h (score_statistics' delta method for two rows sharing
// a key; kept >= 1/2). col = exp(D) f.
// The same tilt reaches the K path: sum_i P_ij Q_i gains the queries' scatter times the
// key, (1/L) sum_i Q'_i Q'_i^T (K_j - Kbar) / sqrt(d_head), which with the gradient's
// shared part r_g adds r_g (1-r_k) tilt to the K bracket (units of S U), with
//   tilt = S (1-r_k)(1-r_q) (w (1-r_q) + 2 r_q) / d_head:
// its own square (with the Wishart spread of the queries' scatter) and its cross term with
// the shared query's column tilt. Both vanish at S = 0 and at r_k = 1.
// Range: like every delta-method average here, D needs e^{2 sig} << L. Beyond it the
// excess measured with a one-head sampler (docs/theory/attention.md) grows far more slowly than S^2 (d_head 16, L 32, r 0: ln of the excess
// 0.07, 0.11, 0.15, 0.25 at S = 2, 3, 4, 8, where D is 0.12, 0.28, 0.49, 1.97), so both
// terms are tapered by score_statistics' own first correction, t = 1 - (e^sig - 1)(2 e^sig
// - 1) h (kept >= 0): 0.94 at S = 1, L = 128; 0 where the expansion has nothing left.
template <class T>
SIGPROP_HD key_spread<T> column_spread(int d_in, int d_head, const T& h, const T& r_q, const T& r_k,
                                       const T& S, const T& e_sig) noexcept {
    using std::exp;
    using std::expm1;
    const T rq = max_of(T(0), r_q);
    const T uq = T(1) - rq, uk = T(1) - max_of(T(0), r_k);
    const T w = T(1) + (T(d_head) + T(1)) / T(d_in);  // in T: d_head may be INT_MAX
    const T s = mul0(uk, S);   // (1 - r_k) S
    const T rho = mul0(rq, s);  // r_q (1 - r_k) S, with the correlations taken as >= 0
    const T taper = max_of(T(0), T(1) - mul0(mul0(e_sig - T(1), T(2) * e_sig - T(1)), h));
    const T D = mul0(taper, mul0(mul0(s, s) / T(d_head), w * uq * uq / T(2) + T(3) * rq * uq + rq * rq));
    const T f = max_of(T(0.5), T(1) - mul0(mul0(expm1(rho), T(2) * e_sig - T(1)), h));
    return {mul0(exp(D), f), mul0(taper, mul0(s, uq * (w * uq + T(2) * rq))) / T(d_head)};
}

}  // namespace sigprop::detail
