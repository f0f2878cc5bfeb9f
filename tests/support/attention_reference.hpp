#pragma once
// Independent reference for the attention probabilities' second moment E[sum_j P_j^2] of a
// softmax over L i.i.d. N(0, sig) scores, by the Laplace-transform identity
//   E[e_1^2 / D^2] = int_0^inf t E[e_1^2 e^{-t e_1}] (E[e^{-t e}])^{L-1} dt,  e = e^{sqrt(sig) Z},
// integrated with Boost.Math adaptive quadrature in long double (no expansion in 1/L).
#include <cmath>

#include <boost/math/quadrature/exp_sinh.hpp>
#include <boost/math/quadrature/gauss_kronrod.hpp>

namespace sigprop::test::attention_reference {

using ld = long double;

inline ld gaussian_mean(ld sig, auto f) {
    using gk = boost::math::quadrature::gauss_kronrod<ld, 31>;
    const ld c = 1 / std::sqrt(2 * 3.14159265358979323846264338327950288L);
    return gk::integrate([&](ld z) { return f(std::exp(std::sqrt(sig) * z)) * c * std::exp(-z * z / 2); },
                         -14.0L, 14.0L, 12, 1e-18L);
}

/// E[sum_j P_j^2] = L E[P_1^2].
inline ld sum_p2(int L, ld sig) {
    boost::math::quadrature::exp_sinh<ld> outer;
    const ld v = outer.integrate([&](ld t) {
        const ld a = gaussian_mean(sig, [t](ld e) { return e * e * std::exp(-t * e); });
        const ld b = gaussian_mean(sig, [t](ld e) { return std::exp(-t * e); });
        return t * a * std::pow(b, ld(L - 1));
    }, 1e-14L);
    return ld(L) * v;
}

}  // namespace sigprop::test::attention_reference
