#pragma once
// residual(branch, lambda, beta): y = lambda x + beta F(x), the residual connection with
// the scaling of DeepScaleLM (lambda^2 + beta^2 = 1) or the standard one (lambda = beta = 1).
#include <cmath>
#include <limits>
#include <type_traits>
#include <utility>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

/// The weights are stored as S and converted to the scalar type of the moments they are
/// applied to, so residual(branch) (S = double) also composes float components.
template <class Branch, class S>
struct residual_t {
    Branch branch;
    S lambda{1};
    S beta{1};
};

/// y = x + F(x) (lambda = beta = 1).
template <class Branch>
residual_t<Branch, double> residual(Branch branch) {
    return {std::move(branch), 1.0, 1.0};
}

/// y = lambda x + beta F(x); beta is converted to lambda's type.
template <class Branch, class S>
residual_t<Branch, S> residual(Branch branch, S lambda, std::type_identity_t<S> beta) {
    return {std::move(branch), lambda, beta};
}

template <class Branch, class S>
void validate(const residual_t<Branch, S>& r) {
    detail::require_finite("residual", "lambda", r.lambda);
    detail::require_finite("residual", "beta", r.beta);
    validate(r.branch);
}

namespace detail {
// a * b with 0 * anything = 0: a zero weight silences an overflowed part without NaN.
template <class T>
T times0(const T& a, const T& b) noexcept {
    return (a == T(0) || b == T(0)) ? T(0) : a * b;
}

// a x + b y (the residual's mean), never NaN from finite weights. When both products
// overflow with opposite signs (inf - inf) the sum is evaluated relative to the larger of
// |x| and |y|, which gives the finite value or the signed overflow it really has; an
// infinite x or y (an overflowed branch) dominates a finite one, and two infinite inputs
// with opposite contributions have no sign left: 0.
template <class T>
T weighted_sum(const T& a, const T& x, const T& b, const T& y) noexcept {
    const T s = times0(a, x) + times0(b, y);
    if (s == s) return s;
    const bool fx = is_finite(x), fy = is_finite(y);
    if (fx != fy) return fx ? times0(b, y) : times0(a, x);
    if (!fx) return T(0);
    using std::abs;
    const T m = abs(x) > abs(y) ? abs(x) : abs(y);
    return (times0(a, x / m) + times0(b, y / m)) * m;
}

// Sum of two uncorrelated parts with weights a and b: the variances and the token
// covariances add. Formed from (a s)^2 so that a tiny weight and a huge variance do not
// meet as 0 * inf; the correlation is the variance-weighted mean of the two correlations,
// evaluated relative to the larger term so that it survives an overflow of the sum. An
// infinite term dominates (both infinite: the plain mean); when both variances vanish
// the limit weights the correlations by a^2 and b^2.
//
// Underflow: a sum with a nonzero weight on a positive variance is positive, however
// small. When its terms underflow to 0 (lambda < 1 repeated over thousands of layers with
// a silent branch shrinks the stream by lambda^2 per layer) the sum is kept at the
// smallest positive value, denorm_min (min for a type without subnormals): rounding up
// instead of to nearest, an absolute error of at most that one unit. The stream then stays
// a valid input of a following LayerNorm, which is scale-invariant (its moments depend on
// the correlation only), instead of becoming an exact 0 that it must reject; and the
// correlation is the one of the part that is really there.
//
// Weights of 1 (standard residuals, sums of gradient paths) skip the square root, whose
// only role is the 0 * inf guard; and while the sum is a normal finite number the
// correlation takes one division. Both agree with the general path to a few ulps; a whole
// model evaluates this several times per layer.
template <class T>
void add_weighted(T a, T var_a, T corr_a, T b, T var_b, T corr_b, T& var, T& corr) noexcept {
    using std::sqrt;
    const auto weighted = [](const T& w, const T& v) {
        if (w == T(1)) return v;
        const T p = times0(w, sqrt(v));
        return p * p;
    };
    const T va = weighted(a, var_a), vb = weighted(b, var_b);
    var = va + vb;
    const T big = va < vb ? vb : va;
    const T inf = std::numeric_limits<T>::infinity();
    const bool pos_a = a != T(0) && var_a > T(0), pos_b = b != T(0) && var_b > T(0);
    if (var == T(0) && (pos_a || pos_b)) var = std::numeric_limits<T>::denorm_min();
    if (var < inf && var >= std::numeric_limits<T>::min()) {
        corr = (corr_a * va + corr_b * vb) / var;
    } else if (big == inf) {
        corr = (va == inf && vb == inf) ? (corr_a + corr_b) / 2 : (va == inf ? corr_a : corr_b);
    } else if (big > T(0)) {
        const T wa = va / big, wb = vb / big;
        corr = (corr_a * wa + corr_b * wb) / (wa + wb);
    } else if (pos_a != pos_b) {
        corr = pos_a ? corr_a : corr_b;
    } else {
        const T wa = a * a, wb = b * b;
        corr = (wa + wb > T(0) && wa + wb < inf) ? (corr_a * wa + corr_b * wb) / (wa + wb)
                                                   : (corr_a + corr_b) / 2;
    }
    corr = corr > T(1) ? T(1) : (corr < T(-1) ? T(-1) : corr);
}
}  // namespace detail

// REFERENCE.md section 3. Assumption: at initialisation the branch output is uncorrelated
// with its input, position by position and across tokens (true when the branch ends with a
// zero-mean random projection, which every transformer branch does; not true for, e.g.,
// a bare ReLU branch). Then
//   mean = lambda mu + beta mu_F,  var = lambda^2 s2 + beta^2 s2_F,
//   cov = lambda^2 r s2 + beta^2 r_F s2_F.
template <class Branch, class S, class T>
signal<T> forward(const residual_t<Branch, S>& r, const signal<T>& x) {
    validate(r);
    detail::check_signal("residual", x);
    const T lambda = T(r.lambda), beta = T(r.beta);
    const signal<T> f = forward(r.branch, x);
    signal<T> y;
    y.mean = detail::weighted_sum(lambda, x.mean, beta, f.mean);
    detail::add_weighted(lambda, x.var, x.corr, beta, f.var, f.corr, y.var, y.corr);
    return y;
}

// dL/dx = lambda g + beta J_F^T g. The branch's Jacobian ends (from the output side) with
// the transpose of a zero-mean random projection, independent of g, so the two paths are
// uncorrelated and their moments add like the forward's.
template <class Branch, class S, class T>
gradient<T> backward(const residual_t<Branch, S>& r, const signal<T>& x, const gradient<T>& g) {
    validate(r);
    detail::check_signal("residual", x);
    detail::check_gradient("residual", g);
    const T lambda = T(r.lambda), beta = T(r.beta);
    const gradient<T> gf = backward(r.branch, x, g);
    gradient<T> out;
    detail::add_weighted(lambda, g.var, g.corr, beta, gf.var, gf.corr, out.var, out.corr);
    return out;
}

}  // namespace sigprop
