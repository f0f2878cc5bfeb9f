#pragma once
// Logarithm of the standard normal distribution function, accurate far into the lower tail
// (where Phi itself underflows), for the closed-form tails of the softmax quadrature.
#include <cmath>

#include <boost/math/constants/constants.hpp>
#include <boost/math/special_functions/erf.hpp>

#include "sigprop/core/config.hpp"

namespace sigprop::detail {

/// Mills ratio R(t) = Phi(-t) / phi(t) for t >= 5, by the continued fraction
/// R(t) = 1 / (t + 1 / (t + 2 / (t + 3 / (t + ...)))) evaluated backwards from a fixed
/// depth: at t >= 5 a depth of 80 is converged well beyond long double precision.
template <class T>
SIGPROP_HD T normal_mills_ratio(T t) noexcept {
    T f = t;
    for (int k = 80; k >= 1; --k) f = t + T(k) / f;
    return T(1) / f;
}

/// ln Phi(y) for the standard normal distribution function Phi.
template <class T>
SIGPROP_HD T log_normal_cdf(T y) noexcept {
    using std::log;
    using std::log1p;
    namespace bc = boost::math::constants;
    // For positive y, ln Phi(y) = log1p(-Phi(-y)) keeps the digits of a Phi near 1.
    if (y > T(0)) return log1p(-boost::math::erfc(y * bc::one_div_root_two<T>()) / T(2));
    if (y > T(-5)) return log(boost::math::erfc(-y * bc::one_div_root_two<T>()) / T(2));
    const T t = -y;
    return -t * t / T(2) - bc::log_root_two_pi<T>() + log(normal_mills_ratio(t));
}

}  // namespace sigprop::detail
