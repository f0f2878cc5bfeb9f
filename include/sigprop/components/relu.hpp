#pragma once
// ReLU, y = max(x, 0), applied element-wise to a Gaussian input.
#include <cmath>
#include <type_traits>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/form.hpp"
#include "sigprop/core/moments.hpp"
#include "sigprop/detail/gaussian.hpp"

namespace sigprop {

/// Element-wise ReLU. `form = form::best` (default) is exact for a Gaussian input of any mean;
/// `form::paper` is the arc-cosine kernel of Kedia et al. (2024), Table 1, which assumes a
/// zero-mean input (where the two agree) and rejects any other mean.
template <class T>
struct relu {
    sigprop::form form{sigprop::form::best};
};

namespace detail {

/// Moments of relu(m + u) for standard normals u, v with correlation r: `excess` is
/// E[relu(m + u)] - max(m, 0), then var and cov, P(m + u > 0) and P(m + u > 0, m + v > 0).
/// Scaled by s (excess) and s^2 (var, cov) they are the moments of relu(mu + s u).
template <class W>
struct relu_standard {
    W excess, var, cov, pos, both;
};

// Zero mean (m = 0): the paper's arc-cosine kernel, exact. E[relu(u)] = 1/sqrt(2 pi),
// E[relu(u)^2] = 1/2 and E[relu(u) relu(v)] = (sqrt(1 - r^2) + r (pi - arccos r)) / (2 pi)
// (Cho & Saul 2009). Written as cov = r/4 + h(r)/(2 pi) with
// h(r) = r asin(r) - r^2 / (1 + sqrt(1 - r^2)) = sqrt(1 - r^2) + r asin(r) - 1: both terms
// of h are O(r^2), so the covariance keeps full relative accuracy as r -> 0 where the
// textbook form subtracts 1/(2 pi) from 1/(2 pi) + O(r).
template <class W>
SIGPROP_HD relu_standard<W> relu_zero_mean(const W& r) noexcept {
    using std::asin;
    using std::sqrt;
    const W two_pi = W(2) * pi_v<W>();
    const W root = sqrt((W(1) - r) * (W(1) + r));
    const W h = r * asin(r) - r * r / (W(1) + root);
    return {W(1) / sqrt(two_pi), W(1) / W(2) - W(1) / two_pi, r / W(4) + h / two_pi, W(1) / W(2),
            W(1) / W(4) + asin(r) / two_pi};
}

// Negative mean (m < 0): exact moments of a truncated (bivariate) normal. With P = Phi(m),
// p = phi(m): E[relu] = m P + p, E[relu^2] = (m^2 + 1) P + m p, and (Rosenbaum 1961, the
// moments of u, v, u v over the quadrant u > -m, v > -m)
//   E[relu(a) relu(b)] = (m^2 + r) F2 + 2 m p Phi(m c) + sqrt(1 - r^2) / (2 pi) exp(-m^2 / (1 + r))
// with F2 = P(u > -m, v > -m) = Phi2(m, m; r) and c = sqrt((1 - r) / (1 + r)); our derivation
// in docs/theory/relu.md. The subtractions lose about log10(|m|^3) digits relative to the
// (tiny) result; the working precision (double for float) covers that. Below m = -5 the
// mean and second moment are taken from Laplace's continued fraction instead (see
// relu_tail_fractions), which has no subtraction: there the erfc route also lost ~2 m^2
// ulps to the rounding of its argument m / sqrt 2, before the m^2-fold cancellation.
template <class W>
struct relu_tail_fractions {
    W f0, f1, f2;
};

// Laplace's continued fraction for the Mills ratio, Phi(-t) / phi(t) = 1 / F_0 with
// F_k = t + (k + 1) / F_{k+1} (evaluated backwards from depth 80, converged beyond long
// double for t >= 5, as in normal_mills_ratio). With m = -t, P = Phi(m), p = phi(m):
//   P = p / F_0,   m P + p = p (1 - t / F_0) = p / (F_0 F_1),
//   (m^2 + 1) P + m p = p ((t^2 + 1) / F_0 - t) = 2 p / (F_0 F_1 F_2),
// using F_0 - t = 1 / F_1 and F_1 - t = 2 / F_2 (our derivation).
template <class W>
relu_tail_fractions<W> relu_tail_fraction(const W& t) noexcept {
    relu_tail_fractions<W> f{t, t, t};
    W fk = t;
    for (int k = 80; k >= 1; --k) {
        fk = t + W(k) / fk;  // F_{k-1}
        if (k == 3) f.f2 = fk;
        if (k == 2) f.f1 = fk;
    }
    f.f0 = fk;
    return f;
}

template <class W>
relu_standard<W> relu_negative_mean(const W& m, const W& r) noexcept {
    using std::exp;
    using std::sqrt;
    const W p = normal_pdf(m);
    W P, mean, second;
    if (m < W(-5)) {
        const relu_tail_fractions<W> f = relu_tail_fraction(-m);
        P = p / f.f0;
        mean = p / (f.f0 * f.f1);
        second = W(2) * p / (f.f0 * f.f1 * f.f2);
    } else {
        P = normal_cdf(m);
        mean = m * P + p;
        second = (m * m + W(1)) * P + m * p;
    }
    const W both = orthant_diagonal(m, r);
    W cross = (m * m + r) * both;
    if (r > W(-1)) {
        const W c = sqrt((W(1) - r) / (W(1) + r));
        cross += W(2) * m * p * normal_cdf(m * c) +
                 sqrt((W(1) - r) * (W(1) + r)) / (W(2) * pi_v<W>()) * exp(-m * m / (W(1) + r));
    }
    return {mean, second - mean * mean, cross - mean * mean, P, both};
}

// Positive mean (m > 0): relu(a) = a + relu(-a), and Stein's lemma gives
// Cov(a, relu(-b)) = -r s^2 Phi(-m); hence var(m) = erf(m / sqrt 2) + var(-m),
// cov(m) = r erf(m / sqrt 2) + cov(-m), E[relu](m) = m + E[relu](-m). The small
// negative-mean moments are added to the large identity part, so nothing cancels.
template <class W>
relu_standard<W> relu_standard_moments(const W& m, const W& r) noexcept {
    using std::erf;
    using std::sqrt;
    if (m == W(0)) return relu_zero_mean(r);
    if (m < W(0)) return relu_negative_mean(m, r);
    const relu_standard<W> n = relu_negative_mean(-m, r);
    const W e = erf(m / sqrt(W(2)));
    return {n.excess, e + n.var, r * e + n.cov, normal_cdf(m), orthant_diagonal(m, r)};
}

/// mean / sd of the input, with the limits of a vanishing sd: +-inf, or 0 for mean 0.
template <class W>
SIGPROP_HD W relu_standard_mean(const W& mu, const W& s) noexcept {
    if (s > W(0)) return mu / s;
    const W inf = W(1) / W(0);
    return mu > W(0) ? inf : (mu < W(0) ? -inf : W(0));
}

// Best form: exact for a Gaussian input of any mean (see the pieces above). An input whose
// mean is infinitely many sds away passes unchanged (m = +inf) or is zeroed (m = -inf);
// when the output variance vanishes the correlation takes its limit as m -> -inf, which is
// 1 for r = 1 and 0 otherwise (the joint tail exp(-m^2 / (1 + r)) dies faster than the
// single tail exp(-m^2 / 2)).
//
// Working precision: gaussian_work_t<T>, except below m = -2 for double, where the tail is
// evaluated in long double (relu_tail_t). There the subtractions of relu_negative_mean cost
// up to ~m^4 ulps (5e-11 relative in double at m = -10), and near the density's underflow
// (m ~ -37.5 in double) the standard moments are subnormal or 0 in double: rounded there
// before being scaled by s^2 and divided (cov / var), they lost up to all their digits
// (RELIABILITY.md, defect 9). m itself is formed in long double too: the result's relative
// error is ~m^2 times m's.
template <class W>
using relu_tail_t = std::conditional_t<std::is_same_v<W, double>, long double, W>;

template <class T, class W>
signal<T> relu_forward_in(const signal<T>& x) noexcept {
    using std::sqrt;
    const W var = W(x.var), r = W(x.corr), mu = W(x.mean);
    const W s = sqrt(var);
    const W m = relu_standard_mean(mu, s);
    if (normal_pdf(m) == W(0)) {  // |m| so large that the other side has no mass at all
        if (m > W(0)) return x;
        return {T(0), T(0), r >= W(1) ? T(1) : T(0)};
    }
    const relu_standard<W> z = relu_standard_moments(m, r);
    signal<T> y;
    y.mean = T((mu > W(0) ? mu : W(0)) + s * z.excess);
    y.var = T(var * z.var);
    if (r >= W(1)) y.corr = T(1);
    else if (z.var > W(0)) y.corr = T(clamp_corr(z.cov / z.var));
    else y.corr = T(0);
    return y;
}

template <class T>
signal<T> relu_forward_best(const signal<T>& x) noexcept {
    using W = gaussian_work_t<T>;
    using E = relu_tail_t<W>;
    if constexpr (!std::is_same_v<E, W>) {
        if (W(x.mean) < W(-2) * std::sqrt(W(x.var))) return relu_forward_in<T, E>(x);
    }
    return relu_forward_in<T, W>(x);
}

// Paper Table 1, exact for a zero-mean Gaussian input, typed as published:
// mean = s / sqrt(2 pi), var = s^2 (pi - 1) / (2 pi),
// cov = s^2 / (2 pi) (pi r + sqrt(1 - r^2) - r arccos(r) - 1); corr = cov / var is formed
// from the bracket so that a zero variance still gives its limit.
template <class T>
SIGPROP_HD signal<T> relu_forward_paper(const signal<T>& x) noexcept {
    using std::acos;
    using std::sqrt;
    const T pi = pi_v<T>();
    const T r = x.corr;
    const T bracket = pi * r + sqrt(T(1) - r * r) - r * acos(r) - T(1);
    return {sqrt(x.var) / sqrt(T(2) * pi), x.var * (pi - T(1)) / (T(2) * pi),
            clamp_corr(bracket / (pi - T(1)))};
}

template <class T>
signal<T> forward_impl(const relu<T>& c, const signal<T>& x) noexcept {
    return c.form == form::paper ? relu_forward_paper(x) : relu_forward_best(x);
}

// Backward, the model's own rule dL/dx = g * 1{x > 0} with g independent of x:
// var = s2_g P(a > 0) and cov = r_g s2_g P(a > 0, b > 0), so corr = r_g F2 / Phi(m).
// At zero mean F2 = 1/4 + asin(r) / (2 pi) (paper Table 1); the best form uses
// F2 = Phi2(m, m; r) for any mean. When P(a > 0) underflows the correlation takes its
// limit (r_g for r = 1, else 0), as in the forward pass.
// Working precision as for the forward: long double for double below m = -2, where P(a > 0)
// and the orthant probability are subnormal in double near the density's underflow.
template <class T, class W>
gradient<T> relu_backward_in(const relu<T>& c, const signal<T>& x, const gradient<T>& g) noexcept {
    using std::asin;
    using std::sqrt;
    const W r = W(x.corr);
    W pos, both;
    if (c.form == form::paper) {
        pos = W(1) / W(2);
        both = W(1) / W(4) + asin(r) / (W(2) * pi_v<W>());
    } else {
        const W m = relu_standard_mean(W(x.mean), sqrt(W(x.var)));
        const bool beyond = normal_pdf(m) == W(0);
        pos = beyond ? (m > W(0) ? W(1) : W(0)) : normal_cdf(m);
        both = beyond ? pos : orthant_diagonal(m, r);
    }
    gradient<T> d;
    d.var = T(W(g.var) * pos);
    if (pos > W(0)) d.corr = T(clamp_corr(W(g.corr) * both / pos));
    else d.corr = r >= W(1) ? g.corr : T(0);
    return d;
}

template <class T>
gradient<T> backward_impl(const relu<T>& c, const signal<T>& x, const gradient<T>& g) noexcept {
    using W = gaussian_work_t<T>;
    using E = relu_tail_t<W>;
    if constexpr (!std::is_same_v<E, W>) {
        if (c.form != form::paper && W(x.mean) < W(-2) * std::sqrt(W(x.var))) return relu_backward_in<T, E>(c, x, g);
    }
    return relu_backward_in<T, W>(c, x, g);
}

}  // namespace detail

template <class T>
void validate(const relu<T>& c) {
    detail::require_form("relu", c.form, c.form == form::best || c.form == form::paper, "{best, paper}");
}

namespace detail {
template <class T>
void check_relu_input(const relu<T>& c, const signal<T>& x) {
    validate(c);
    check_signal("relu", x);
    if (c.form == form::paper && x.mean != T(0)) fail("relu", "x.mean", x.mean, "{0}");
}
}  // namespace detail

/// Forward moments of the output for input moments x.
template <class T>
signal<T> forward(const relu<T>& c, const signal<T>& x) {
    detail::check_relu_input(c, x);
    return detail::forward_impl(c, x);
}

/// Gradient moments at the input, given the input moments x and the gradient g at the output.
template <class T>
gradient<T> backward(const relu<T>& c, const signal<T>& x, const gradient<T>& g) {
    detail::check_relu_input(c, x);
    detail::check_gradient("relu", g);
    return detail::backward_impl(c, x, g);
}

}  // namespace sigprop
