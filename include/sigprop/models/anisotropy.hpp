#pragma once
// The anisotropy of the residual stream's token-specific part, tracked through a stack for
// the query/key weight-gradient norms. Derivation and measurements: docs/theory/models.md
// section 2 ("Query and key norms").
//
// C is the covariance over the d units of a token's deviation from its sequence's mean (the
// token-specific part of the stream); its trace per unit is t = var (1 - corr) and its
// anisotropy a = d tr(C^2) / (tr C)^2 is 1 for an isotropic stream. The query/key
// gradient of a block carries E tr(S^2) of the sequence's token-specific scatter S, whose
// unit-coupling part is a times the isotropic one. a grows through a stack because every
// FFN block multiplies the stream's token-specific part by I + B (B = W1 D W2, D the
// activation's slopes): a product of random matrices, whose spectrum spreads.
#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop::detail {

/// Per-unit variance of the token-specific part of a stream: var (1 - corr).
template <class T>
T token_specific_variance(const signal<T>& x) noexcept {
    return x.var * (T(1) - x.corr);
}

/// The anisotropy of the sum of two uncorrelated parts with traces (per unit) ta, tb and
/// anisotropies aa, ab, whose principal directions are unrelated (independent weights):
/// tr(C^2) gains the cross term 2 tr(Ca) tr(Cb) / d. Keeps aa where the sum is not a
/// finite positive number (an overflowed or vanished stream).
template <class T>
T mixed_anisotropy(T aa, T ta, T ab, T tb) noexcept {
    const T t = ta + tb;
    if (!(t > T(0)) || !is_finite(t) || !(ta >= T(0)) || !(tb >= T(0))) return aa;
    // Shares by division, not by 1/t: for a subnormal t, 1/t overflows (and 0 * inf is NaN).
    const T fa = ta / t, fb = tb / t;
    const T a = aa * fa * fa + ab * fb * fb + T(2) * fa * fb;
    return a > T(1) ? a : T(1);
}

/// After an attention block with token-specific variances t_skip (the skip's share) and
/// t_out at the residual sum: the branch's part t_out - t_skip is a token mixture of the
/// values projected by Wv Wo, uncorrelated with the skip (E[Wv Wo] = 0); two independent
/// projections of the stream give it anisotropy 2 + a (a random d x d projection W maps
/// anisotropy a to 1 + a for large d: E tr((W^T C W)^2)).
template <class T>
T anisotropy_after_attention(T a, T t_skip, T t_out) noexcept {
    const T branch = t_out - t_skip;
    return mixed_anisotropy(a, t_skip, T(2) + a, branch > T(0) ? branch : T(0));
}

/// After an FFN block. Its token-specific output is, to first order in each token's
/// deviation, the input deviation times B = W1 D W2 with D the slopes of the activation at
/// the sequence's common pre-activation: E[D^2] is the slope product of two tokens at the
/// pre-activation correlation, and B's entries have variance b / d with
/// b = t_linear / t_skip. The skip and that part give M = (I + B)^T C (I + B); for B with
/// independent Gaussian entries, E tr M = (1 + b) tr C and
/// E tr M^2 = (1 + 2b + b^2)(1 + 1/d) tr C^2 - tr C^2/d + (2b + b^2) (tr C)^2 / d, so
/// a -> a + (1 + a/d)(1 - 1/(1 + b)^2) (tests/models/anisotropy.test.cpp samples it). The
/// remainder t_out - t_skip - t_linear (the activation's nonlinear part and the hidden
/// dropout) is a fresh projection through W2 of a near-isotropic d_ff-dimensional part:
/// anisotropy 1 + d/d_ff.
template <class T>
T anisotropy_after_ffn(T a, T t_skip, T t_linear, T t_out, int d_model, int d_ff) noexcept {
    if (!(t_skip > T(0)) || !(t_linear >= T(0)) || !is_finite(t_linear) || !is_finite(t_skip)) return a;
    const T g = T(1) + t_linear / t_skip;
    const T a_linear = a + (T(1) + a / T(d_model)) * (T(1) - T(1) / (g * g));
    const T t_lin = t_skip + t_linear, rest = t_out - t_lin;
    return mixed_anisotropy(a_linear, t_lin, T(1) + T(d_model) / T(d_ff), rest > T(0) ? rest : T(0));
}

}  // namespace sigprop::detail
