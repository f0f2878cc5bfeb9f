#pragma once
// Reference values for the LayerNorm tests by numerical integration at long double
// precision (Boost.Math adaptive Gauss-Kronrod), independent of the library's series,
// recurrence and closed forms:
//   euler_2f1(c, w)          2F1(1/2, 1/2; c; 1 - w) from Euler's integral;
//   token_corr(d, r)         E[cos(u, v)] for u, v in n = d - 1 dimensions;
//   grad_corr_factor(d, r)   ((n-2)/(n-1)) E[(n - 2 + cos^2(u, v)) / (|u| |v|)];
// u, v standard Gaussian vectors whose coordinate pairs have correlation r.
#include <cmath>

#include <boost/math/quadrature/gauss_kronrod.hpp>
#include <boost/math/special_functions/gamma.hpp>

namespace sigprop::test::layer_norm_ref {

using real = long double;

inline constexpr real pi = 3.141592653589793238462643383279502884L;

template <class F>
real integrate(F f, real a, real b, real tol = real(1e-17)) {
    return boost::math::quadrature::gauss_kronrod<real, 31>::integrate(f, a, b, 6, tol);
}

/// Euler's integral with t = cos^2(phi):
///   2F1(1/2, 1/2; c; z) = 2 Gamma(c) / (sqrt(pi) Gamma(c - 1/2))
///                         * int_0^{pi/2} sin^{2c-2}(phi) / sqrt(sin^2 + w cos^2) dphi,
/// valid for c > 1/2, w = 1 - z. For small w the integrand turns over at phi ~ sqrt(w), so
/// the range is split at sqrt(w) 10^k to keep every piece smooth on its own scale.
inline real euler_2f1(real c, real w) {
    const real k = 2 / (std::sqrt(pi) * boost::math::tgamma_delta_ratio(c - real(0.5), real(0.5)));
    const auto f = [&](real t) {
        const real si = std::sin(t), co = std::cos(t);
        return std::pow(si, 2 * c - 2) / std::sqrt(si * si + w * co * co);
    };
    real lo = 0, total = 0;
    if (w > 0)
        for (real cut = std::sqrt(w); cut < pi / 2; lo = cut, cut *= 10) total += integrate(f, lo, cut);
    return k * (total + integrate(f, lo, pi / 2));
}

/// The law of (|u|, |v|, cos) has density proportional to
///   R1^{n-1} R2^{n-1} (1 - t^2)^{(n-3)/2} exp(-(R1^2 + R2^2 - 2 r R1 R2 t) / (2 (1 - r^2))).
/// In polar coordinates R1 = R cos(phi), R2 = R sin(phi) the R integral is a Gamma
/// function; with sin(2 phi) = sin(a) and t = cos(b) what remains is
///   E[(R1 R2)^alpha f(t)] = (1 - r^2)^alpha Gamma(n + alpha) / Gamma(n) * I(alpha, f) / I(0, 1),
///   I(alpha, f) = int_0^{pi/2} da int_0^pi db sin(a)^{n-1+alpha} sin(b)^{n-2} f(cos b)
///                 / (1 - r cos(b) sin(a))^{n + alpha},
/// a smooth integrand (n >= 2) on a rectangle.
template <class F>
real angle_integral(int n, real r, int alpha, F f) {
    return integrate(
        [&](real a) {
            const real sa = std::sin(a);
            return integrate(
                [&](real b) {
                    const real cb = std::cos(b);
                    return std::pow(sa, real(n - 1 + alpha)) * std::pow(std::sin(b), real(n - 2)) * f(cb) /
                           std::pow(1 - r * cb * sa, real(n + alpha));
                },
                0, pi, real(1e-15));
        },
        0, pi / 2, real(1e-15));
}

/// E[cos(u, v)] for d >= 3.
inline real token_corr(int d, real r) {
    const int n = d - 1;
    return angle_integral(n, r, 0, [](real t) { return t; }) /
           angle_integral(n, r, 0, [](real) { return real(1); });
}

/// The gradient correlation over r_g for d >= 4 and |r| < 1: the covariance
/// E[(n - 2 + cos^2) / (|u| |v|)] over the variance (n - 1) E[1/|u|^2] = (n - 1)/(n - 2).
inline real grad_corr_factor(int d, real r) {
    const int n = d - 1;
    const real cov = angle_integral(n, r, -1, [&](real t) { return n - 2 + t * t; }) /
                     angle_integral(n, r, 0, [](real) { return real(1); }) /
                     ((1 - r) * (1 + r) * real(n - 1));
    return cov * real(n - 2) / real(n - 1);
}

}  // namespace sigprop::test::layer_norm_ref
