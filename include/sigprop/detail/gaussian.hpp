#pragma once
// Standard normal pieces shared by the activation components: density, distribution
// function, the equal-threshold bivariate orthant probability, and the working precision
// in which the formulas are evaluated.
#include <cmath>
#include <type_traits>

#include <boost/math/special_functions/owens_t.hpp>
#include <boost/math/policies/policy.hpp>

#include "sigprop/core/config.hpp"

namespace sigprop::detail {

/// float formulas are evaluated in double: several of them subtract terms that are a few
/// powers of |mean / sd| larger than the result, which float alone cannot afford.
template <class T>
using gaussian_work_t = std::conditional_t<std::is_same_v<T, float>, double, T>;

template <class T>
SIGPROP_HD constexpr T pi_v() noexcept {
    return T(3.141592653589793238462643383279502884L);
}

/// phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
template <class T>
SIGPROP_HD T normal_pdf(const T& x) noexcept {
    using std::exp;
    using std::sqrt;
    return exp(-x * x / T(2)) / sqrt(T(2) * pi_v<T>());
}

/// Phi(x) through erfc, which keeps full relative accuracy in the lower tail.
template <class T>
SIGPROP_HD T normal_cdf(const T& x) noexcept {
    using std::erfc;
    using std::sqrt;
    return erfc(-x / sqrt(T(2))) / T(2);
}

/// Boost.Math reports nothing through exceptions here: the callers are noexcept and only
/// pass finite arguments.
using quiet_policy = boost::math::policies::policy<
    boost::math::policies::domain_error<boost::math::policies::ignore_error>,
    boost::math::policies::pole_error<boost::math::policies::ignore_error>,
    boost::math::policies::overflow_error<boost::math::policies::ignore_error>,
    boost::math::policies::underflow_error<boost::math::policies::ignore_error>,
    boost::math::policies::evaluation_error<boost::math::policies::ignore_error>>;

/// P(u < h, v < h) for standard normals u, v with correlation r (the bivariate normal
/// distribution function on the diagonal). Owen (1956): Phi2(h, h; r) =
/// Phi(h) - 2 T(h, sqrt((1 - r) / (1 + r))), with T Owen's T function. Exact ends:
/// r = 1 gives Phi(h); r = -1 gives max(0, 2 Phi(h) - 1); h = 0 gives 1/4 + asin(r) / (2 pi)
/// (Sheppard), which needs no Owen's T. Host-only when h != 0 (Boost.Math).
template <class T>
T orthant_diagonal(const T& h, const T& r) noexcept {
    using std::asin;
    using std::sqrt;
    const T phi_h = normal_cdf(h);
    if (r >= T(1)) return phi_h;
    if (r <= T(-1)) return h > T(0) ? T(2) * phi_h - T(1) : T(0);
    if (h == T(0)) return T(1) / T(4) + asin(r) / (T(2) * pi_v<T>());
    const T c = sqrt((T(1) - r) / (T(1) + r));
    const T p = phi_h - T(2) * boost::math::owens_t(h, c, quiet_policy{});
    // The subtraction may leave rounding noise outside the possible range [0, Phi(h)].
    return p < T(0) ? T(0) : (p > phi_h ? phi_h : p);
}

/// Clamps a correlation computed as a ratio of moments onto [-1, 1].
template <class T>
SIGPROP_HD T clamp_corr(const T& c) noexcept {
    return c > T(1) ? T(1) : (c < T(-1) ? T(-1) : c);
}

}  // namespace sigprop::detail
