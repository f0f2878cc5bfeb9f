#pragma once
// Independent long double references for the softmax moments, by Boost.Math adaptive
// quadrature: exact 1-D (L = 2) and 2-D (L = 3) integrals over the logit differences, and
// for any L the Laplace-transform representation integrated directly in t with adaptive
// inner Gaussian integrals (a different numerical route from the library's fixed rules).
#include <cmath>

#include <boost/math/quadrature/exp_sinh.hpp>
#include <boost/math/quadrature/gauss_kronrod.hpp>

namespace sigprop::test::softmax_reference {

using ld = long double;
using gk = boost::math::quadrature::gauss_kronrod<ld, 31>;

inline ld normal_pdf(ld z) { return std::exp(-z * z / 2) / std::sqrt(2 * 3.14159265358979323846264338327950288L); }

/// The quantities compared: E[p^2], E[p^3], E[p^2 Q], Var p, E[p^2 (1 - 2p + Q)].
struct values {
    ld p2, p3, p2q, var, grad;
};

/// L = 2: p = logistic(sqrt(2 s) w), w ~ N(0, 1).
inline values two(ld s) {
    auto integral = [&](auto g) {
        return gk::integrate([&](ld w) { const ld p = 1 / (1 + std::exp(-std::sqrt(2 * s) * w)); return g(p, 1 - p) * normal_pdf(w); },
                             -40.0L, 40.0L, 10, 1e-17L);
    };
    return {integral([](ld p, ld) { return p * p; }), integral([](ld p, ld) { return p * p * p; }),
            integral([](ld p, ld q) { return p * p * (p * p + q * q); }),
            integral([](ld p, ld) { return (p - 0.5L) * (p - 0.5L); }),
            integral([](ld p, ld q) { return 2 * p * p * q * q; })};
}

/// L = 3: the differences d2 = x2 - x1, d3 = x3 - x1 are Gaussian with variance 2 s and
/// covariance s: d2 = sigma sqrt(2) a, d3 = sigma (a / sqrt(2) + sqrt(3/2) b).
inline values three(ld s) {
    const ld sg = std::sqrt(s);
    auto integral = [&](auto g) {
        return gk::integrate([&](ld a) {
                   return normal_pdf(a) * gk::integrate([&](ld b) {
                              const ld e2 = std::exp(sg * std::sqrt(2.0L) * a);
                              const ld e3 = std::exp(sg * (a / std::sqrt(2.0L) + std::sqrt(1.5L) * b));
                              const ld den = 1 + e2 + e3;
                              return g(1 / den, e2 / den, e3 / den) * normal_pdf(b);
                          }, -12.0L, 12.0L, 6, 1e-15L);
               }, -12.0L, 12.0L, 6, 1e-15L);
    };
    return {integral([](ld p, ld, ld) { return p * p; }), integral([](ld p, ld, ld) { return p * p * p; }),
            integral([](ld p, ld q, ld r) { return p * p * (p * p + q * q + r * r); }),
            integral([](ld p, ld, ld) { return (p - 1 / 3.0L) * (p - 1 / 3.0L); }),
            integral([](ld p, ld q, ld r) { return p * p * ((1 - p) * (1 - p) + q * q + r * r); })};
}

/// Any L: E[p^2] = int_0^inf t psi2(t) phi(t)^n dt and the gradient factor
/// (1/6) int t^3 (2 n psi2^2 phi^(n-1) + n (n-1) psi2 psi1^2 phi^(n-2)) dt, with
/// psi_k(t) = E[e^{k a} exp(-t e^a)], phi = psi_0, a ~ N(0, s), n = L - 1.
inline values laplace(long long L, ld s) {
    const ld sg = std::sqrt(s), n = ld(L - 1);
    auto psi = [&](int k, ld t) {
        return gk::integrate([&](ld z) { const ld a = sg * z; return std::exp(k * a - t * std::exp(a)) * normal_pdf(z); },
                             -12.0L, 12.0L, 6, 1e-15L);
    };
    boost::math::quadrature::exp_sinh<ld> es;
    const ld p2 = es.integrate([&](ld t) { return t * psi(2, t) * std::pow(psi(0, t), n); }, 1e-14L);
    const ld grad = es.integrate([&](ld t) {
        const ld f = psi(0, t), a1 = psi(1, t), a2 = psi(2, t);
        const ld more = L >= 3 ? n * (n - 1) * a2 * a1 * a1 * std::pow(f, n - 2) : 0;
        return t * t * t * (2 * n * a2 * a2 * std::pow(f, n - 1) + more) / 6;
    }, 1e-14L);
    return {p2, 0, 0, p2 - 1 / (ld(L) * ld(L)), grad};
}

}  // namespace sigprop::test::softmax_reference
