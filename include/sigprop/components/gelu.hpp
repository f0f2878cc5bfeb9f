#pragma once
// GeLU in its exact erf form, y = x Phi(x), applied element-wise to a zero-mean Gaussian
// input. (The tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) is a
// different function and is not what this component models.)
#include <cmath>
#include <limits>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/form.hpp"
#include "sigprop/core/moments.hpp"
#include "sigprop/components/relu.hpp"
#include "sigprop/detail/gaussian.hpp"

namespace sigprop {

/// Element-wise GeLU x Phi(x). The paper's formulas (Kedia et al. 2024, Table 1) are
/// exact for a zero-mean Gaussian input, so `form::best` and `form::paper` are the same
/// closed forms (evaluated in an overflow-free arrangement); a nonzero input mean is
/// rejected.
template <class T>
struct gelu {
    sigprop::form form{sigprop::form::best};
};

namespace detail {

/// The quantities of q = s2 every GeLU formula uses: A = 1 + q and a = q / (1 + q), with
/// 1 - a = 1 / A exactly, which keeps the r -> 1, q -> inf corner free of cancellation.
template <class W>
struct gelu_scale {
    W q, A, a;
};

template <class W>
SIGPROP_HD gelu_scale<W> gelu_scale_of(const W& q) noexcept {
    const W A = W(1) + q;
    return {q, A, q / A};
}

/// arccos(r a) for |r| <= 1, written through asin of the distance to the nearer end,
/// 1 - |r| a = (1 - |r|) + |r| / A, so that it stays accurate as r a -> +-1.
template <class W>
SIGPROP_HD W gelu_arccos(const W& r, const gelu_scale<W>& z) noexcept {
    using std::asin;
    using std::sqrt;
    const W ar = r < W(0) ? -r : r;
    const W near = W(2) * asin(sqrt(((W(1) - ar) + ar / z.A) / W(2)));
    return r < W(0) ? pi_v<W>() - near : near;
}

// Paper Table 1: var = (q / (2 pi)) (pi - a - arccos(a) + 2 a sqrt((1 - a) / (1 + a))),
// exact for zero mean (confirmed by quadrature, tests/components/gelu.test.cpp).
// sqrt((1 - a) / (1 + a)) = 1 / sqrt(A (1 + a)) = 1 / sqrt(1 + 2q), formed without 1 + 2q.
// arccos_a = gelu_arccos(1, z), which E[gelu'^2] needs too.
template <class W>
SIGPROP_HD W gelu_variance(const gelu_scale<W>& z, const W& arccos_a) noexcept {
    using std::sqrt;
    const W pi = pi_v<W>();
    const W bracket = pi - z.a - arccos_a + W(2) * z.a / (sqrt(z.A) * sqrt(W(1) + z.a));
    return z.q / (W(2) * pi) * bracket;
}

// Paper Table 1, exact for zero mean:
// cov = (q/4) (r + r (2/pi) asin(r a) + q (2/pi) (q (1 - r^2) + 1 + r^2) / ((q+1) sqrt((q+1)^2 - (r q)^2))) - mean^2
// with mean^2 = q a / (2 pi). Our rearrangement (docs/theory/gelu.md): with
// w = sqrt(1 - (r a)^2) (so sqrt((q+1)^2 - (r q)^2) = A w),
//   cov = (q/4) r (1 + (2/pi) asin(r a)) + r^2 a^2 / (2 pi (1 + w)) (1 / (A w) - (q - 1)),
// which removes mean^2 analytically: it is exactly 0 at r = 0 and keeps full relative
// accuracy as r -> 0, and nothing in it squares q, so it cannot overflow.
template <class W>
SIGPROP_HD W gelu_covariance(const gelu_scale<W>& z, const W& r) noexcept {
    using std::asin;
    using std::sqrt;
    const W pi = pi_v<W>();
    const W ar = r < W(0) ? -r : r;
    const W w = sqrt(((W(1) - ar) + ar / z.A) * (W(1) + ar * z.a));
    const W smooth = z.q / W(4) * r * (W(1) + W(2) / pi * asin(r * z.a));
    const W ra = r * z.a;
    return smooth + ra * ra / (W(2) * pi * (W(1) + w)) * (W(1) / (z.A * w) - (z.q - W(1)));
}

// Paper Table 1, exact for zero mean: E[gelu'(a) gelu'(b)] with gelu' = Phi(x) + x phi(x),
//   1/2 + (1/(2 pi)) (-arccos(r a) + r a ((q+1)(2q+3) - 2 (r q)^2) / ((q+1)^2 - (r q)^2)^(3/2)),
// and at r = 1 the g var form a (5q + 3) / (1 + 2q)^(3/2) is the same expression. With
// v = A (1 - (r a)^2) = (A (1 - |r|) + |r|) (1 + |r| a) >= 1 the fraction is
// (2 + 1/v) / (sqrt(A) sqrt(v)) (docs/theory/gelu.md), which neither overflows nor divides
// 0 by 0 when q is huge and |r| = 1.
// arccos_ra = gelu_arccos(r, z).
template <class W>
SIGPROP_HD W gelu_slope_product(const gelu_scale<W>& z, const W& r, const W& arccos_ra) noexcept {
    using std::sqrt;
    const W pi = pi_v<W>();
    const W ar = r < W(0) ? -r : r;
    const W v = (z.A * (W(1) - ar) + ar) * (W(1) + ar * z.a);
    const W fraction = (W(2) + W(1) / v) / (sqrt(z.A) * sqrt(v));
    return W(1) / W(2) + (r * z.a * fraction - arccos_ra) / (W(2) * pi);
}

/// GeLU's forward moments for the scale z of x, given gelu_arccos(1, z).
template <class T>
SIGPROP_HD signal<T> gelu_forward(const gelu_scale<gaussian_work_t<T>>& z, const gaussian_work_t<T>& arccos_a,
                                  const signal<T>& x) noexcept {
    using W = gaussian_work_t<T>;
    using std::sqrt;
    // An overflowed input (reachable in models without LayerNorm): GeLU(x) = x Phi(x) tends
    // to ReLU as the scale grows, and the scale-free ReLU formulas give +inf, not the NaN of
    // inf/inf in the GeLU series.
    if (!(x.var <= std::numeric_limits<T>::max())) return forward_impl(relu<T>{}, x);
    const W r = W(x.corr);
    const W var = gelu_variance(z, arccos_a);
    signal<T> y;
    y.mean = T(sqrt(z.q) * sqrt(z.a) / sqrt(W(2) * pi_v<W>()));
    y.var = T(var);
    if (r >= W(1)) y.corr = T(1);
    else if (var > W(0)) y.corr = T(clamp_corr(gelu_covariance(z, r) / var));
    else y.corr = x.corr;
    return y;
}

/// GeLU's backward from the slope products same = E[gelu'(x)^2] and cross = E[gelu'(a) gelu'(b)].
template <class T>
SIGPROP_HD gradient<T> gelu_backward(const gaussian_work_t<T>& same, const gaussian_work_t<T>& cross,
                                     const gradient<T>& g) noexcept {
    using W = gaussian_work_t<T>;
    return {T(W(g.var) * same), T(clamp_corr(W(g.corr) * cross / same))};
}

// Forward, zero mean: mean = (s / sqrt(2 pi)) sqrt(a) (Stein: E[x Phi(x)] = q E[phi(x)]),
// var and cov as above, corr = cov / var; as q -> 0 GeLU is x/2 near 0, so a vanishing
// variance keeps the input correlation.
template <class T>
SIGPROP_HD signal<T> forward_impl(const gelu<T>&, const signal<T>& x) noexcept {
    using W = gaussian_work_t<T>;
    const gelu_scale<W> z = gelu_scale_of(W(x.var));
    return gelu_forward(z, gelu_arccos(W(1), z), x);
}

// Backward: dL/dx = g gelu'(x) with g independent of x, so var = s2_g E[gelu'(x)^2] and
// cov = r_g s2_g E[gelu'(a) gelu'(b)]; corr = r_g times their ratio.
template <class T>
SIGPROP_HD gradient<T> backward_impl(const gelu<T>&, const signal<T>& x, const gradient<T>& g) noexcept {
    using W = gaussian_work_t<T>;
    if (!(x.var <= std::numeric_limits<T>::max())) return backward_impl(relu<T>{}, x, g);  // as the forward
    const gelu_scale<W> z = gelu_scale_of(W(x.var));
    const W r = W(x.corr);
    return gelu_backward(gelu_slope_product(z, W(1), gelu_arccos(W(1), z)),
                         gelu_slope_product(z, r, gelu_arccos(r, z)), g);
}

}  // namespace detail

template <class T>
void validate(const gelu<T>& c) {
    detail::require_form("gelu", c.form, c.form == form::best || c.form == form::paper, "{best, paper}");
}

namespace detail {
template <class T>
void check_gelu_input(const gelu<T>& c, const signal<T>& x) {
    validate(c);
    check_signal("gelu", x);
    if (x.mean != T(0)) fail("gelu", "x.mean", x.mean, "{0}");
}
}  // namespace detail

/// Forward moments of the output for zero-mean input moments x.
template <class T>
signal<T> forward(const gelu<T>& c, const signal<T>& x) {
    detail::check_gelu_input(c, x);
    return detail::forward_impl(c, x);
}

/// Gradient moments at the input, given the input moments x and the gradient g at the output.
template <class T>
gradient<T> backward(const gelu<T>& c, const signal<T>& x, const gradient<T>& g) {
    detail::check_gelu_input(c, x);
    detail::check_gradient("gelu", g);
    return detail::backward_impl(c, x, g);
}

}  // namespace sigprop
