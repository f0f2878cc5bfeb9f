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
    T col2;    ///< E[(sum_j P_ji)^2], the squared column sum (attention a key receives)
};

// Our derivation (docs/theory/attention.md, "softmax statistics"). Given the query, the
// key-specific scores of the L keys are i.i.d. N(0, sig) (the part of the scores shared by
// all keys cancels in the softmax). A delta-method expansion of e^{a_j} / sum_l e^{a_l} to
// second order in the fluctuation of the denominator gives
//   E[sum_j P_ij^2] = (e^sig / L) (1 - (e^sig - 1)(2 e^sig - 1) / L),
// exact at sig = 0 (1/L) and accurate while e^{2 sig} << L. Outside that range the
// correction factor is kept at >= 1/2 and the result capped at 1 (a one-hot softmax), so
// the value stays in [1/L, 1] without NaN. A column sum of P averages e^{a} over the L
// queries: with the queries' shared part r (1 - r) S of the score covariance,
//   E[(sum_j P_ji)^2] = (1 - 1/L) e^{r (1 - r) S} + E[sum_j P_ji^2],
// capped at L (a column sum lies in [0, L] and has mean 1).
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
    a.col2 = min_of(n, (T(1) - T(1) / n) * a.e_rho + a.sum_p2);
    return a;
}

}  // namespace sigprop::detail
