#pragma once
// Inverted dropout: every element is kept with probability 1 - p, independently, and kept
// values are scaled by 1 / (1 - p) so that the mean is unchanged.
#include <cmath>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

/// y = x * m / (1 - p) with m[i,k] i.i.d. Bernoulli(1 - p), drawn afresh for every element.
/// p = 0 is the identity; p = 1 (drop everything) is not a valid dropout.
template <class T>
struct dropout {
    T p{0};
};

namespace detail {

// Paper Table 1; exact, for any input law, because the mask is independent of x and of
// the other elements' masks: E[m/(1-p)] = 1 and E[(m/(1-p))^2] = 1/(1-p), hence
//   E[y] = mu,  E[y^2] = (s2 + mu^2)/(1-p)  =>  var = (s2 + p mu^2)/(1-p),
//   E[y_i y_j] = E[x_i x_j] for i != j      =>  cov = r s2.
// p mu^2 is formed as (sqrt(p) mu)^2 so that p = 0 with a huge mean never meets as
// 0 * inf, and the sum of two non-negative terms cannot cancel. An overflow of the
// variance is +infinity (dividing by 1 - p <= 1 only makes the value larger).
// The output correlation r s2 / var is evaluated as r (1-p) / (1 + (sqrt(p) mu / s)^2),
// which needs neither var nor mu^2: it stays accurate when they overflow or underflow
// (sqrt(p) mu is formed first, so p = 0 never meets an infinite mu / s). At
// s2 = 0 it takes its limit as s2 -> 0: 0 when p mu != 0 (the variance is all mask
// noise), r (1 - p) when p mu = 0 (the output variance vanishes too).
template <class T>
SIGPROP_HD signal<T> forward_impl(const dropout<T>& c, const signal<T>& x) noexcept {
    using std::sqrt;
    const T keep = T(1) - c.p;
    const T sp = sqrt(c.p);
    const T b = sp * x.mean;
    signal<T> y;
    y.mean = x.mean;
    y.var = (x.var + b * b) / keep;
    const T s = sqrt(x.var);
    if (s > T(0)) {
        const T u = b / s;
        y.corr = x.corr * keep / (T(1) + u * u);
    } else {
        y.corr = b == T(0) ? x.corr * keep : T(0);
    }
    return y;
}

// Paper Table 1; exact. dL/dx = g m / (1-p) with the forward's mask, independent of g:
// var = s2_g / (1-p); between tokens the masks are independent and E[m_i m_j] = (1-p)^2,
// so cov = r_g s2_g and the correlation is r_g (1 - p), also in the limit s2_g -> 0.
template <class T>
SIGPROP_HD gradient<T> backward_impl(const dropout<T>& c, const signal<T>&,
                                     const gradient<T>& g) noexcept {
    const T keep = T(1) - c.p;
    return {g.var / keep, g.corr * keep};
}

}  // namespace detail

template <class T>
void validate(const dropout<T>& c) {
    detail::require_drop_probability("dropout", "p", c.p);
}

/// Forward moments of the output for input moments x.
template <class T>
signal<T> forward(const dropout<T>& c, const signal<T>& x) {
    validate(c);
    detail::check_signal("dropout", x);
    return detail::forward_impl(c, x);
}

/// Gradient moments at the input, given the input moments x and the gradient g at the output.
template <class T>
gradient<T> backward(const dropout<T>& c, const signal<T>& x, const gradient<T>& g) {
    validate(c);
    detail::check_signal("dropout", x);
    detail::check_gradient("dropout", g);
    return detail::backward_impl(c, x, g);
}

}  // namespace sigprop
