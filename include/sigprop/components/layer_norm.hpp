#pragma once
// LayerNorm over the d units of each token, as at initialisation: gain 1, bias 0, and
// epsilon 0. Per token y = (x - m) / s with m the mean and s^2 the biased variance
// (1/d) sum (x - m)^2 of its d units. Derivations: docs/theory/layer_norm.md.
#include <cmath>
#include <limits>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/form.hpp"
#include "sigprop/core/moments.hpp"
#include "sigprop/detail/chi_moments.hpp"
#include "sigprop/detail/hypergeometric.hpp"

namespace sigprop {

/// LayerNorm over d >= 2 units without affine parameters. `form` selects our derivation
/// (form::best, the default) or the paper's Table 1 (form::paper).
template <class T>
struct layer_norm {
    int d{2};
    sigprop::form form{sigprop::form::best};
};

namespace detail {

// Our derivation. Input units are i.i.d. within a token; centring projects each token onto
// the (d-1)-dimensional complement of (1, ..., 1), where the centred vectors u_i, u_j of
// two tokens are Gaussian in n = d - 1 dimensions with per-coordinate correlation r. Then
// y_i . y_j / d = cos(u_i, u_j), so the token correlation of the output is
//   E[cos] = r nu_n 2F1(1/2, 1/2; n/2 + 1; r^2),  nu_n = (2/n) [Gamma((n+1)/2)/Gamma(n/2)]^2.
// Exact for Gaussian inputs of any mean and variance (the mean and the scale cancel).
// n = 1 gives (2/pi) arcsin r; large n gives r; |r| = 1 gives r.
template <class T>
SIGPROP_HD T layer_norm_token_corr(int d, const T& r) noexcept {
    if (r == T(1) || r == T(-1)) return r;
    const long long n = d - 1;
    const T f = half_half_2f1(n + 2, r * r, (T(1) - r) * (T(1) + r)).value;
    // nu_n F <= nu_n F(z = 1) = 1, so |E[cos]| <= |r|: hold that against rounding near |r| = 1.
    const T k = chi_mean_sq_ratio<T>(n) * f;
    return k < T(1) ? r * k : r;
}

// Our derivation, for d >= 4. The input gradient of token i is (1/s_i) P_i g_i with
// P_i = C - a_i a_i^T (C the centring projection, a_i = y_i / sqrt(d)), a projection of
// rank d - 2, and tr(P_i P_j) = d - 3 + cos^2(u_i, u_j). The incoming gradient g is
// independent of x, so the covariance is (s2_g r_g / d) E[(d - 3 + cos^2) / (s_i s_j)];
// integrating the joint law of |u_i|, |u_j| and their angle (series in r^2, summed to
// 2F1s) and dividing by the variance gives the factor
//   corr_g / r_g = ((n-2)/(n-1)) nu_n [F_{c} + n (F_{c-1} - F_c)],  F_c = 2F1(1/2,1/2;c;r^2),
// c = n/2 + 1, n = d - 1: 1 at |r| = 1, about 1 - 3/(2d) at r = 0. Exact for Gaussian
// inputs. The difference F_{c-1} - F_c is summed directly, so no cancellation at large d.
template <class T>
SIGPROP_HD T layer_norm_grad_corr_factor(int d, const T& r) noexcept {
    if (r == T(1) || r == T(-1)) return T(1);
    const long long n = d - 1;
    const auto f = half_half_2f1(n + 2, r * r, (T(1) - r) * (T(1) + r));
    const T nn = T(n);
    const T k = (nn - T(2)) / (nn - T(1)) * chi_mean_sq_ratio<T>(n) * (f.value + nn * f.step_down);
    return k > T(1) ? T(1) : k;
}

// Forward. Mean 0 and variance 1 are exact for epsilon = 0 (every token's outputs sum to
// 0 and their squares to d). Token correlation: paper Table 1, r (1 - 1/d) (measurably
// wrong, see the docs), or ours above.
template <class T>
SIGPROP_HD signal<T> forward_impl(const layer_norm<T>& c, const signal<T>& x) noexcept {
    signal<T> y;
    y.mean = T(0);
    y.var = T(1);
    y.corr = c.form == form::paper ? x.corr - x.corr / T(c.d) : layer_norm_token_corr(c.d, x.corr);
    return y;
}

// Backward. Paper Table 1: variance s2_g / s2, correlation unchanged. Ours: the input
// gradient (1/s) P g has E|P g|^2 = (d - 2) s2_g, and d s^2 / s2 is chi-square with d - 1
// degrees of freedom, so E[1/s^2] = d / (s2 (d - 3)) and the variance is
// (s2_g / s2) (d - 2)/(d - 3) for d >= 4. For d = 3 the expectation diverges (+infinity;
// the covariance stays finite for |r| < 1, so the correlation is 0, and r_g at |r| = 1).
// For d = 2, P = 0: the gradient is exactly zero; its correlation is reported as r_g.
// Precondition: x.var > 0.
template <class T>
SIGPROP_HD gradient<T> backward_impl(const layer_norm<T>& c, const signal<T>& x,
                                     const gradient<T>& g) noexcept {
    const T ratio = g.var / x.var;
    if (c.form == form::paper) return {ratio, g.corr};
    if (c.d == 2) return {T(0), g.corr};
    if (c.d == 3) {
        const bool same = x.corr == T(1) || x.corr == T(-1);
        return {std::numeric_limits<T>::infinity(), same ? g.corr : T(0)};
    }
    return {ratio * (T(c.d - 2) / T(c.d - 3)), g.corr * layer_norm_grad_corr_factor(c.d, x.corr)};
}

}  // namespace detail

template <class T>
void validate(const layer_norm<T>& c) {
    detail::require_size("layer_norm", "d", c.d, 2);
    detail::require_form("layer_norm", c.form, c.form == form::best || c.form == form::paper,
                         "{best, paper}");
}

namespace detail {

/// The input moments. A zero variance makes every token 0/0, so x.var must be > 0.
template <class T>
void check_layer_norm_input(const signal<T>& x) {
    if (!is_finite(x.mean)) require_finite("layer_norm", "x.mean", x.mean);
    if (!(is_finite(x.var) && x.var > T(0))) require_positive("layer_norm", "x.var", x.var);
    if (!(x.corr >= T(-1) && x.corr <= T(1))) require_corr("layer_norm", "x.corr", x.corr);
}

}  // namespace detail

/// Forward moments of the output for input moments x (x.var > 0).
template <class T>
signal<T> forward(const layer_norm<T>& c, const signal<T>& x) {
    validate(c);
    detail::check_layer_norm_input(x);
    return detail::forward_impl(c, x);
}

/// Gradient moments at the input, given the input moments x and the gradient g at the output.
template <class T>
gradient<T> backward(const layer_norm<T>& c, const signal<T>& x, const gradient<T>& g) {
    validate(c);
    detail::check_layer_norm_input(x);
    detail::check_gradient("layer_norm", g);
    return detail::backward_impl(c, x, g);
}

/// Covariance (= correlation, the output variance being 1) between two different units
/// of one token: exactly -1/(d - 1), since the d outputs sum to 0 and their squares to d.
template <class T>
T unit_covariance(const layer_norm<T>& c) {
    validate(c);
    return T(-1) / T(c.d - 1);
}

}  // namespace sigprop
