#pragma once
// Linear layer d_in -> d_out without bias, weights i.i.d. N(0, sigma_w^2).
#include <cmath>
#include <limits>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

/// y = x W with W[d_in x d_out] i.i.d. N(0, sigma_w^2); sigma_w is a standard deviation.
template <class T>
struct linear {
    int d_in{1};
    int d_out{1};
    T sigma_w{1};
};

namespace detail {

// Paper Table 1 (exact for Gaussian weights; no assumption on the input law).
// y[i,k] = sum_m x[i,m] W[m,k]: mean 0 since E[W] = 0, and
// E[y_i y_j] = sigma_w^2 sum_m E[x_im x_jm] = d_in sigma_w^2 (cov_x + mu^2).
// The products are formed as (sigma_w s)^2 and (sigma_w mu)^2 so that a tiny weight and a
// huge input do not meet as 0 * inf; sigma_w = 0 gives 0 even for an overflowed (+inf)
// input inside a model (W = 0 maps everything to 0).
template <class T>
SIGPROP_HD T weight_times(const T& sigma_w, const T& v) noexcept {
    return sigma_w == T(0) ? T(0) : sigma_w * v;
}

template <class T>
SIGPROP_HD signal<T> forward_impl(const linear<T>& c, const signal<T>& x) noexcept {
    using std::sqrt;
    const T n = T(c.d_in);
    const T a = weight_times(c.sigma_w, sqrt(x.var));
    const T b = weight_times(c.sigma_w, x.mean);
    const T mu2 = x.mean * x.mean;
    signal<T> y;
    y.mean = T(0);
    y.var = n * (a * a + b * b);
    // corr = (r s2 + mu^2) / (s2 + mu^2), scaled by the larger term so that neither the
    // sum nor mu^2 can overflow. The limits of an overflowed input: an infinite mu^2 makes
    // every token equal (corr 1); an infinite s2 with a finite mean leaves r.
    const T big = mu2 > x.var ? mu2 : x.var;
    const T max = std::numeric_limits<T>::max();
    if (!(big <= max)) y.corr = mu2 <= max ? x.corr : T(1);
    else if (big > T(0)) y.corr = (x.corr * (x.var / big) + mu2 / big) / (x.var / big + mu2 / big);
    else y.corr = x.corr;
    return y;
}

// dL/dx = G W^T: variance d_out sigma_w^2 s2_g; the token correlation is untouched
// because every token is multiplied by the same W.
template <class T>
SIGPROP_HD gradient<T> backward_impl(const linear<T>& c, const signal<T>&,
                                     const gradient<T>& g) noexcept {
    using std::sqrt;
    const T a = weight_times(c.sigma_w, sqrt(g.var));
    return {T(c.d_out) * a * a, g.corr};
}

}  // namespace detail

template <class T>
void validate(const linear<T>& c) {
    detail::require_size("linear", "d_in", c.d_in);
    detail::require_size("linear", "d_out", c.d_out);
    detail::require_nonnegative("linear", "sigma_w", c.sigma_w);
}

/// Forward moments of the output for input moments x.
template <class T>
signal<T> forward(const linear<T>& c, const signal<T>& x) {
    validate(c);
    detail::check_signal("linear", x);
    return detail::forward_impl(c, x);
}

/// Gradient moments at the input, given the input moments x and the gradient g at the output.
template <class T>
gradient<T> backward(const linear<T>& c, const signal<T>& x, const gradient<T>& g) {
    validate(c);
    detail::check_signal("linear", x);
    detail::check_gradient("linear", g);
    return detail::backward_impl(c, x, g);
}

}  // namespace sigprop
