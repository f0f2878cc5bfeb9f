#pragma once
// Reference Gaussian expectations by numerical integration at long double precision
// (Boost.Math adaptive Gauss-Kronrod), independent of any closed form:
//   expect(f, x)           = E[f(X)],        X ~ N(mean, var)
//   expect(f, g, a, b, r)  = E[f(A) g(B)],   (A, B) bivariate normal with correlation r
// Functions with kinks (ReLU at 0, indicators) converge slowly across a kink, so the
// caller lists the points where f and g are not smooth and the integration is split there.
#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include <boost/math/quadrature/gauss_kronrod.hpp>

namespace sigprop::test {

using real = long double;

/// A normal law and the points where the integrated function is not smooth.
struct normal_law {
    real mean{0};
    real var{1};
    std::vector<real> kinks{};
};

namespace detail {

/// The standard normal is integrated over [-z_max, z_max]: the mass outside is
/// 2 Phi(-14) ~ 1.6e-44, far below long double precision.
inline constexpr real z_max = 14;

/// Relative tolerance and bisection depth of each adaptive piece. The tolerance sits a few
/// hundred ulps above long double rounding: asking for less makes the adaptive scheme chase
/// rounding noise (in the nested 2-D case, the inner integral's) down to the maximum depth.
inline constexpr real tolerance = 1e-16L;
inline constexpr unsigned max_depth = 12;

inline real std_normal_pdf(real z) {
    return std::exp(-z * z / 2) / std::sqrt(2 * 3.141592653589793238462643383279502884L);
}

/// int phi(z) h(z) dz over [-z_max, z_max], split at the breakpoints inside it.
template <class H>
real integrate_standard(H h, std::vector<real> cuts) {
    cuts.push_back(-z_max);
    cuts.push_back(z_max);
    std::sort(cuts.begin(), cuts.end());
    real total = 0;
    for (std::size_t i = 0; i + 1 < cuts.size(); ++i) {
        const real lo = std::max(cuts[i], -z_max), hi = std::min(cuts[i + 1], z_max);
        if (!(hi > lo)) continue;
        total += boost::math::quadrature::gauss_kronrod<real, 61>::integrate(
            [&](real z) { return std_normal_pdf(z) * h(z); }, lo, hi, max_depth, tolerance);
    }
    return total;
}

}  // namespace detail

/// E[f(X)] for X ~ N(law.mean, law.var); law.kinks are points in X where f is not smooth.
template <class F>
real expect(F f, const normal_law& law) {
    const real s = std::sqrt(law.var);
    if (s == 0) return f(law.mean);
    std::vector<real> cuts;
    for (real k : law.kinks) cuts.push_back((k - law.mean) / s);
    return detail::integrate_standard([&](real z) { return f(law.mean + s * z); }, cuts);
}

/// E[f(A) g(B)] for (A, B) bivariate normal with the given marginals and correlation r.
/// Conditioning on A = mean_a + s_a u, B is normal with mean mean_b + s_b r u and variance
/// s_b^2 (1 - r^2); the inner expectation is one more 1-D integral. The outer integral is
/// split at f's kinks and, for |r| = 1 where B is a function of A, at g's kinks too (for
/// |r| < 1 the inner expectation is smooth in u; a cut there could fall next to one of f's
/// and leave a sliver the adaptive scheme cannot finish).
template <class F, class G>
real expect(F f, G g, const normal_law& a, const normal_law& b, real r) {
    const real sa = std::sqrt(a.var), sb = std::sqrt(b.var);
    const real cond_var = b.var * (1 - r) * (1 + r);
    std::vector<real> cuts;
    if (sa > 0) {
        for (real k : a.kinks) cuts.push_back((k - a.mean) / sa);
        if (sb > 0 && cond_var == 0)
            for (real k : b.kinks) cuts.push_back((k - b.mean) / (sb * r));
    }
    auto outer = [&](real u) {
        const normal_law inner{b.mean + sb * r * u, cond_var, b.kinks};
        return f(a.mean + sa * u) * expect(g, inner);
    };
    if (sa == 0) return outer(0);
    return detail::integrate_standard(outer, cuts);
}

}  // namespace sigprop::test
