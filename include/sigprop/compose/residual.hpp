#pragma once
// residual(branch, lambda, beta): y = lambda x + beta F(x), the residual connection with
// the scaling of DeepScaleLM (lambda^2 + beta^2 = 1) or the standard one (lambda = beta = 1).
#include <cmath>
#include <limits>

#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

template <class Branch, class T>
struct residual_t {
    Branch branch;
    T lambda{1};
    T beta{1};
};

/// y = lambda x + beta F(x).
template <class Branch, class T>
residual_t<Branch, T> residual(Branch branch, T lambda = T(1), T beta = T(1)) {
    return {std::move(branch), lambda, beta};
}

template <class Branch, class T>
void validate(const residual_t<Branch, T>& r) {
    detail::require_finite("residual", "lambda", r.lambda);
    detail::require_finite("residual", "beta", r.beta);
    validate(r.branch);
}

namespace detail {
// Sum of two uncorrelated parts with weights a and b: the variances and the token
// covariances add. Formed from (a s)^2 so that a tiny weight and a huge variance do not
// meet as 0 * inf; the correlation is the covariance-weighted mean of the two
// correlations (its limit when both variances vanish is the plain mean).
template <class T>
void add_weighted(T a, T var_a, T corr_a, T b, T var_b, T corr_b, T& var, T& corr) {
    using std::sqrt;
    const T pa = a * sqrt(var_a), pb = b * sqrt(var_b);
    const T va = pa * pa, vb = pb * pb;
    var = va + vb;
    if (var > T(0) && var <= std::numeric_limits<T>::max()) corr = (corr_a * va + corr_b * vb) / var;
    else if (var > T(0)) corr = va >= vb ? corr_a : corr_b;  // one term overflowed
    else corr = (corr_a + corr_b) / 2;
}
}  // namespace detail

// REFERENCE.md section 3. At initialisation the branch output is uncorrelated with its
// input (every branch ends with a zero-mean random projection), so
//   mean = lambda mu + beta mu_F,  var = lambda^2 s2 + beta^2 s2_F,
//   cov = lambda^2 r s2 + beta^2 r_F s2_F.
template <class Branch, class T>
signal<T> forward(const residual_t<Branch, T>& r, const signal<T>& x) {
    validate(r);
    const signal<T> f = forward(r.branch, x);
    signal<T> y;
    y.mean = r.lambda * x.mean + r.beta * f.mean;
    detail::add_weighted(r.lambda, x.var, x.corr, r.beta, f.var, f.corr, y.var, y.corr);
    return y;
}

// dL/dx = lambda g + beta J_F^T g; the branch's Jacobian is a zero-mean random map at
// initialisation, so the two paths are uncorrelated and their moments add like the forward's.
template <class Branch, class T>
gradient<T> backward(const residual_t<Branch, T>& r, const signal<T>& x, const gradient<T>& g) {
    validate(r);
    const gradient<T> gf = backward(r.branch, x, g);
    gradient<T> out;
    detail::add_weighted(r.lambda, g.var, g.corr, r.beta, gf.var, gf.corr, out.var, out.corr);
    return out;
}

}  // namespace sigprop
