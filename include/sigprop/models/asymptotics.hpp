#pragma once
// Closed forms for the depth behaviour of whole models (REFERENCE.md section 3, our
// derivations in docs/theory/models.md), in terms of per-block constants that predict's
// recurrence computes: a block's branch output variance c (after hidden dropout) and its
// backward gain b (gradient variance at the branch input over that at its output).
// They are exact when c and b do not change with depth, and otherwise describe the trend.
#include <cmath>

#include "sigprop/core/config.hpp"
#include "sigprop/core/errors.hpp"
#include "sigprop/models/post_ln.hpp"

namespace sigprop {

/// The LayerNorm's gradient factor (d-2)/(d-3) of the best form (layer_norm.hpp), d >= 4.
template <class T>
SIGPROP_HD T layer_norm_gradient_factor(int d) noexcept {
    return T(d - 2) / T(d - 3);
}

/// Pre-LN forward: each block adds beta^2 c to lambda^2 times the stream variance, so after
/// n blocks s2_n = lambda^(2n) s2_0 + beta^2 c (1 - lambda^(2n)) / (1 - lambda^2);
/// for lambda = 1 the growth is linear, s2_0 + n beta^2 c.
template <class T>
SIGPROP_HD T preln_forward_variance(T s2_0, T c, T lambda, T beta, long long n) noexcept {
    using std::pow;
    const T l2 = lambda * lambda;
    if (l2 == T(1)) return s2_0 + T(n) * beta * beta * c;
    const T ln = pow(l2, T(n));
    return ln * s2_0 + beta * beta * c * (T(1) - ln) / (T(1) - l2);
}

/// Pre-LN backward with lambda = 1: block j (input variance s2_0 + j beta^2 c) multiplies
/// the gradient variance by 1 + a / (s2_0 + j beta^2 c), a = beta^2 b (d-2)/(d-3). The
/// product over the blocks 0..n-1 is a ratio of Gamma functions,
///   g_0 / g_n = Gamma(x + y + n) Gamma(x) / (Gamma(x + y) Gamma(x + n)),
/// x = s2_0 / (beta^2 c), y = a / (beta^2 c), which grows like n^y: hyperbolic. With b = c
/// (a branch whose backward gain equals its forward variance) and a large d, y ~ 1 and the
/// gradient variance is proportional to the stream variance, the per-block factor being
/// about 1 + 1/(j + x).
template <class T>
T preln_backward_growth(T s2_0, T c, T b, T beta, int d, long long n) {
    using std::exp;
    using std::lgamma;
    detail::require_positive("preln_backward_growth", "beta^2 c", beta * beta * c);
    const T step = beta * beta * c;
    const T x = s2_0 / step;
    const T y = beta * beta * b * layer_norm_gradient_factor<T>(d) / step;
    return exp(lgamma(x + y + T(n)) + lgamma(x) - lgamma(x + y) - lgamma(x + T(n)));
}

/// The per-block gradient factor of the Pre-LN recurrence at stream variance s2 (lambda = 1).
template <class T>
SIGPROP_HD T preln_block_gradient_factor(T s2, T b, T beta, int d) noexcept {
    return T(1) + beta * beta * b * layer_norm_gradient_factor<T>(d) / s2;
}

/// The constants of one Post-LN block for the closed forms below: branch output variance c
/// (after hidden dropout), branch backward gain b, the relative variance phi of the
/// branch's per-token scale (post_ln_branch_phi) and kappa (1 for an FFN; the gradient's
/// correlation for attention), as in models/post_ln.hpp.
template <class T>
struct postln_block {
    T c, b, phi, kappa;
};

namespace detail {
/// The skip path's variance factor lambda^2 (1 - 2 kappa perp/(d-2)), perp = beta^2 c / (lambda^2 + beta^2 c).
template <class T>
SIGPROP_HD T postln_skip_path(T lambda, T beta, const postln_block<T>& k, int d) noexcept {
    const T l2 = lambda * lambda, bc = beta * beta * k.c;
    return l2 * post_ln_skip_factor(d, bc / (l2 + bc), k.kappa);
}
}  // namespace detail

/// Post-LN: the stream entering every block but the first has variance 1 (a LayerNorm
/// output), so a block multiplies the gradient variance by the constant
///   E[1/s^2] (1 - (ms + perp)/d) (lambda^2 (1 - 2 kappa perp/(d-2)) + beta^2 b)
/// with E[1/s^2] = (1 + V/m^2)/m of the sum (m = lambda^2 + beta^2 c (d-1)/d, V its token
/// variance's spread), perp = beta^2 c/(lambda^2 + beta^2 c), and ms the mean share of the
/// gradient arriving from the block above (models/post_ln.hpp, docs/theory/models.md
/// section 9): exponential in depth unless the factor is 1.
template <class T>
SIGPROP_HD T postln_block_gradient_factor(T lambda, T beta, const postln_block<T>& k, T ms, int d) noexcept {
    const T l2 = lambda * lambda, bc = beta * beta * k.c, z = l2 + bc;
    return detail::post_ln_relative_inverse_scale(d, l2 / z, bc / z, k.phi) / z * (T(1) - (ms + bc / z) / T(d)) *
           (detail::postln_skip_path(lambda, beta, k, d) + beta * beta * k.b);
}

/// The mean share a Post-LN block hands to the block below: its branch's part of the
/// gradient at its input.
template <class T>
SIGPROP_HD T postln_branch_share(T lambda, T beta, const postln_block<T>& k, int d) noexcept {
    const T skip = detail::postln_skip_path(lambda, beta, k, d), branch = beta * beta * k.b;
    return branch / (skip + branch);
}

/// Post-LN per-layer factor in a stack of identical layers: the attention block below an
/// FFN block (of the layer above) and the FFN block below the attention block.
template <class T>
SIGPROP_HD T postln_layer_gradient_factor(T lambda, T beta, const postln_block<T>& attn, const postln_block<T>& ffn,
                                          int d) noexcept {
    return postln_block_gradient_factor(lambda, beta, attn, postln_branch_share(lambda, beta, ffn, d), d) *
           postln_block_gradient_factor(lambda, beta, ffn, postln_branch_share(lambda, beta, attn, d), d);
}

/// DSLM (Pre-LN, lambda^2 + beta^2 = 1, unit branch variance): the stream variance after
/// n blocks is lambda^(2n) s2_0 + 1 - lambda^(2n), which stays 1 when s2_0 = 1.
template <class T>
SIGPROP_HD T dslm_forward_variance(T s2_0, T lambda, long long n) noexcept {
    using std::pow;
    const T ln = pow(lambda * lambda, T(n));
    return ln * s2_0 + (T(1) - ln);
}

/// DSLM backward over n blocks at unit stream variance: each block multiplies the gradient
/// variance by lambda^2 + beta^2 b (d-2)/(d-3) = 1 + beta^2 (b (d-2)/(d-3) - 1). With
/// beta^2 = k/N and n = 2N blocks the total tends to exp(2 k (b (d-2)/(d-3) - 1)): bounded
/// for any depth, i.e. flat.
template <class T>
SIGPROP_HD T dslm_backward_growth(T beta, T b, int d, long long n) noexcept {
    using std::pow;
    const T b2 = beta * beta;
    return pow(T(1) - b2 + b2 * b * layer_norm_gradient_factor<T>(d), T(n));
}

}  // namespace sigprop
