#pragma once
// Softmax over one row of L entries (the L logits of one attention query, say).
#include <cmath>
#include <limits>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/form.hpp"
#include "sigprop/core/moments.hpp"
#include "sigprop/detail/attention_moments.hpp"
#include "sigprop/detail/softmax_moments.hpp"

namespace sigprop {

/// p = softmax(x) over the L entries of a row. Input moments: mean (irrelevant: softmax is
/// shift invariant), variance s2 and correlation r between the entries of a row. The token
/// axis of the moments is the L entries; independent rows are the samples.
template <class T>
struct softmax {
    int L{2};
    sigprop::form form{sigprop::form::best};
};

namespace detail {

// Paper Table 1, finite-L form, with E = exp((1 - r) s2 L/(L - 1)):
// var = (E - 1) E^2 / ((L - 1) e^{(1 - r) s2} + 1)^2. An approximation (it is off by the
// factor (L/(L - 1))^2 as s2 -> 0; see docs/theory/softmax.md). Evaluated in logarithms so
// that a large s2 overflows to +inf instead of inf/inf = NaN.
template <class T>
SIGPROP_HD T softmax_paper_var(int L, T s) noexcept {
    using std::exp;
    using std::expm1;
    using std::log;
    using std::log1p;
    if (!(s > T(0))) return T(0);
    const T n = T(L - 1);
    const T a = s * T(L) / n;
    const T log_den = s + log(n) + log1p(exp(-s) / n);  // ln((L - 1) e^s + 1)
    const T e = log(expm1(a)) + T(2) * a - T(2) * log_den;
    // Above s ~ max/2 both halves overflow and meet as inf - inf; the exponent is then at
    // least s (L + 2)/(L - 1) > s, so the variance is +infinity, not NaN.
    return e == e ? exp(e) : T(1) / T(0);
}

// Forward moments. Mean 1/L and correlation -1/(L - 1) are exact for every form: the
// entries sum to 1, so L var + L (L - 1) cov = Var(sum) = 0. The variance depends on the
// logits only through their independent part s = (1 - r) s2.
//  best: exact integral representation (detail/softmax_moments.hpp, our derivation), or for
//  large L its asymptotic expansion in 1/L where that is as accurate (~1e-14 relative);
//  paper: the paper's finite-L form; paper_large_l: (e^s - 1)/L^2, the paper's large-L form.
template <class T>
SIGPROP_HD signal<T> forward_impl(const softmax<T>& c, const signal<T>& x) noexcept {
    using std::expm1;
    const T s = (T(1) - x.corr) * x.var;
    const T Lt = T(c.L);
    signal<T> y;
    y.mean = T(1) / Lt;
    y.corr = T(-1) / T(c.L - 1);
    switch (c.form) {
        case form::paper: y.var = softmax_paper_var(c.L, s); break;
        case form::paper_large_l: y.var = expm1(s) / (Lt * Lt); break;
        default: y.var = softmax_var(c.L, s); break;
    }
    return y;
}

// Backward: dz_i = p_i (g_i - sum_j p_j g_j). The shared part of g cancels (sum_j p_j = 1), so
// with g independent of p, E_g[(g_i - sum_j p_j g_j)^2] = s2_g (1 - r_g)(1 - 2 p_i + sum_j p_j^2)
// and Var dz_i = s2_g (1 - r_g) E[p_i^2 (1 - 2 p_i + sum_j p_j^2)] (our derivation, exact).
// The input gradient sums to 0, so its correlation is -1/(L - 1).
//  paper: s2_g (var_paper + 1/L^2); paper_large_l: e^s s2_g / L^2 (both ignore r_g; the
//  paper's grid had r_g = 0).
template <class T>
SIGPROP_HD gradient<T> backward_impl(const softmax<T>& c, const signal<T>& x,
                                     const gradient<T>& g) noexcept {
    using std::exp;
    const T s = (T(1) - x.corr) * x.var;
    const T Lt = T(c.L);
    gradient<T> r;
    r.corr = T(-1) / T(c.L - 1);
    switch (c.form) {
        // mul0: a zero gradient (or a saturated softmax whose factor is 0) gives 0, not
        // 0 * inf = NaN, when the other factor has overflowed.
        case form::paper: r.var = mul0(g.var, softmax_paper_var(c.L, s) + T(1) / (Lt * Lt)); break;
        case form::paper_large_l: r.var = mul0(g.var, exp(s) / (Lt * Lt)); break;
        default: r.var = mul0(mul0(g.var, T(1) - g.corr), softmax_grad(c.L, s)); break;
    }
    return r;
}

}  // namespace detail

template <class T>
void validate(const softmax<T>& c) {
    detail::require_size("softmax", "L", c.L, 2);
    detail::require_form("softmax", c.form,
                         c.form == form::best || c.form == form::paper || c.form == form::paper_large_l,
                         "{best, paper, paper_large_l}");
}

/// Forward moments of the probabilities for logit moments x.
template <class T>
signal<T> forward(const softmax<T>& c, const signal<T>& x) {
    validate(c);
    detail::check_signal("softmax", x);
    return detail::forward_impl(c, x);
}

/// Gradient moments at the logits, given the logit moments x and the gradient g at the
/// probabilities.
template <class T>
gradient<T> backward(const softmax<T>& c, const signal<T>& x, const gradient<T>& g) {
    validate(c);
    detail::check_signal("softmax", x);
    detail::check_gradient("softmax", g);
    return detail::backward_impl(c, x, g);
}

}  // namespace sigprop
