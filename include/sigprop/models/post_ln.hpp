#pragma once
// The LayerNorm backward of a Post-LN block as a stack of Post-LN blocks has it (our
// derivation, docs/theory/models.md section 9, "adopted"). The component's formula
// (layer_norm.hpp) takes a Gaussian input and an isotropic incoming gradient: it divides
// by a chi-square token variance and removes 2/d of the gradient (its mean and its
// component along the output y). Inside a Post-LN stack neither holds:
//  - the block input x is itself a LayerNorm output, so every token's sample variance is
//    exactly var_x and the sum z = lambda x + beta f fluctuates much less than a
//    chi-square: E[1/s^2] comes from the second-order delta method with the measured
//    spread of s^2 (post_ln_relative_inverse_scale);
//  - the gradient arriving from the block above is not isotropic: its skip part has no
//    mean (the block above removed it) and, below a branch that is homogeneous of degree
//    one in its input (ReLU FFN, or GeLU nearly; attention in a collapsed stream), no
//    component along y either (Euler's theorem: J y = f, and the skip's y component is
//    -beta f . g_z / lambda), so the projection removes less (post_ln_incoming);
//  - the skip and branch paths are correlated: g_z is orthogonal to z, and for a
//    homogeneous branch u . J u / |u|^2 = lambda perp (perp = beta^2 v_f / var_z), which
//    lowers the skip path by 2 kappa perp / (d - 2) (post_ln_skip_factor). kappa is 1 for
//    the FFN (one map per token) and the gradient's correlation for attention, whose map
//    of one token's own gradient is only its 1/L share of the attention (measured: the
//    cross term vanishes for an uncorrelated gradient).
// Every piece was measured in isolation with throwaway one-block samplers before it was
// composed; the whole-model effect is in docs/ACCURACY.md.
#include <cmath>
#include <limits>

#include "sigprop/core/config.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop::detail {

/// The spread of the gradient arriving at a Post-LN block's output, each share relative to
/// an isotropic gradient (1: as isotropic): along the all-ones direction (the LayerNorm's
/// mean) and along the block's own output y. The model's output gradient is isotropic.
template <class T>
struct post_ln_incoming {
    T mean_share{1};
    T y_share{1};
};

/// var_z E[1/s^2] for z = lambda x + beta f per token when every token of x has sample
/// variance exactly var_x (x a LayerNorm output), in terms of the shares of var_z:
/// skip = lambda^2 var_x / var_z and branch = 1 - skip, f Gaussian per unit given the token
/// with a per-token scale of relative variance phi. In units of var_z:
/// E s^2 = m = skip + branch (d-1)/d; Var s^2 = 4 skip branch / d + 2 branch^2 (d-1)/d^2 +
/// branch^2 phi; E[1/s^2] ~ (1 + Var s^2 / m^2) / m (second-order delta method). Shares
/// rather than variances: no overflow for huge moments.
template <class T>
SIGPROP_HD T post_ln_relative_inverse_scale(int d, const T& skip, const T& branch, const T& phi) noexcept {
    const T n = T(d);
    const T m = skip + branch * (n - T(1)) / n;
    const T s = skip / m, b = branch / m;
    const T v = (T(4) * s * b + T(2) * b * b * (n - T(1)) / n) / n + b * b * phi;
    return (T(1) + v) / m;
}

/// The gradient at the residual sum z of a Post-LN block, from the gradient g at its
/// output. skip = lambda^2 var_x; phi as above; ln_input: x is a LayerNorm output (every
/// block but a stack's first); grad_corr: the LayerNorm's correlation factor
/// (ln_eval::grad_corr). With ln_input false and an isotropic incoming gradient this is
/// the component's (d-2)/(d-3) g / var_z. Degenerate and overflowed inputs take the
/// component's rules (ln_backward of predict.hpp): no gradient gives none, a vanished
/// variance +infinity, an overflowed one the component's value.
template <class T>
gradient<T> post_ln_backward(int d, const signal<T>& z, const T& skip, const T& phi, bool ln_input,
                             const post_ln_incoming<T>& in, const T& grad_corr, const gradient<T>& g) noexcept {
    const T inf = std::numeric_limits<T>::infinity();
    if (g.var == T(0)) return {T(0), g.corr};
    if (!(z.var > T(0)) || (g.var == inf && z.var == inf)) return {inf, g.corr};
    const T n = T(d);
    if (!(z.var < inf) || !(skip < inf)) return {g.var / z.var * ((n - T(2)) / (n - T(3))), g.corr * grad_corr};
    // Shares of var_z; a branch that rounding made negative counts as none.
    const T sk = skip < z.var ? skip / z.var : T(1), branch = T(1) - sk;
    const T removed = in.mean_share + sk * in.y_share + branch;
    const T rel = ln_input ? post_ln_relative_inverse_scale(d, sk, branch, phi) : n / (n - T(3));
    return {g.var / z.var * ((T(1) - removed / n) * rel), g.corr * grad_corr};
}

/// The factor on the skip path's gradient variance lambda^2 var(g_z) from its correlation
/// with the branch path: 1 - 2 kappa perp / (d - 2), perp = branch / var_z.
template <class T>
SIGPROP_HD T post_ln_skip_factor(int d, const T& perp, const T& kappa) noexcept {
    return T(1) - T(2) * kappa * perp / T(d - 2);
}

/// The spread the block hands to the block below: the skip part (variance `skip`) has no
/// mean, the branch part (variance `branch`) an isotropic one; neither has a component
/// along y for a homogeneous branch. Overflowed or vanished parts leave it isotropic.
template <class T>
post_ln_incoming<T> post_ln_below(const T& skip, const T& branch) noexcept {
    const T total = skip + branch;
    if (!(total > T(0)) || !(total < std::numeric_limits<T>::infinity())) return {};
    return {branch / total, T(0)};
}

/// The spread below a final LayerNorm on a Post-LN stack: its input y is a LayerNorm output,
/// so the final LayerNorm's backward has already removed the mean and the y component.
template <class T>
post_ln_incoming<T> final_norm_incoming() noexcept {
    return {T(0), T(0)};
}

/// The relative variance phi of a branch's per-token scale: 2/d from its last projection
/// (a Gaussian matrix), 2/d_ff from an FFN's activations (Gaussian kurtosis), and
/// 3 p / ((1-p) d) from the hidden dropout's mask.
template <class T>
T post_ln_branch_phi(int d, int d_ff, bool ffn, const T& p_hidden) noexcept {
    T phi = T(2) / T(d) + T(3) * p_hidden / ((T(1) - p_hidden) * T(d));
    if (ffn) phi += T(2) / T(d_ff);
    return phi;
}

}  // namespace sigprop::detail
