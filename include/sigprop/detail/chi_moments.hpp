#pragma once
// (E|z|)^2 / E|z|^2 for z ~ N(0, I_n): the squared mean of a chi variable with n degrees
// of freedom over its second moment,
//   nu_n = (2/n) [Gamma((n+1)/2) / Gamma(n/2)]^2,
// which rises from nu_1 = 2/pi to 1 as n grows. It normalises the mean cosine of two
// correlated Gaussian vectors (LayerNorm, docs/theory/layer_norm.md).
#include <cmath>

#include "sigprop/core/config.hpp"

namespace sigprop::detail {

template <class T>
SIGPROP_HD T chi_mean_sq_ratio(long long n) noexcept {
    using std::exp;
    if (n <= 40) {
        // Exact products: nu_1 = 2/pi, nu_2 = pi/4 and, from Gamma(x+1) = x Gamma(x),
        // nu_{k+2} = nu_k (k+1)^2 / (k (k+2)). At most 20 factors.
        const T pi = T(3.141592653589793238462643383279502884L);
        T v = n % 2 == 1 ? T(2) / pi : pi / T(4);
        for (long long k = n % 2 == 1 ? 1 : 2; k < n; k += 2) {
            const T kk = T(k);
            v *= (kk + T(1)) * (kk + T(1)) / (kk * (kk + T(2)));
        }
        return v;
    }
    // Stirling: with e = 2/n, ln nu_n = 2 [ln Gamma(x + 1/2) - ln Gamma(x)] - ln x at
    // x = 1/e has the asymptotic series below (odd powers only; Bernoulli-number
    // coefficients). Truncated after e^13, its error for n > 40 is below 3e-21
    // (checked against 40-digit values).
    const T e = T(2) / T(n), e2 = e * e;
    T p = T(-5461) / T(212992);
    p = p * e2 + T(691) / T(90112);
    p = p * e2 - T(31) / T(9216);
    p = p * e2 + T(17) / T(7168);
    p = p * e2 - T(1) / T(320);
    p = p * e2 + T(1) / T(96);
    p = p * e2 - T(1) / T(4);
    return exp(p * e);
}

}  // namespace sigprop::detail
