#pragma once
// Moments of softmax probabilities p = softmax(sigma z), z ~ N(0, I_L), to full precision.
//
// Source: our derivation (docs/theory/softmax.md). For L equicorrelated Gaussian logits
// with variance s2 and correlation r, softmax cancels the shared part, so p has the law of
// softmax(sigma z) with s = sigma^2 = (1 - r) s2. Write a = sigma z_1, S = sum_{j>1} e^{sigma z_j},
// n = L - 1. The Laplace identity 1/X^k = (1/(k-1)!) int_0^inf t^{k-1} e^{-tX} dt and the
// substitution t = e^u turn every moment into a 1-D integral over u of products of
//   Phi(u) = E[F(u + sigma z)],  Gam_k(u) = E[e^{k(u + sigma z)} F(u + sigma z)],  F(x) = exp(-e^x):
//   E[p^2]          = int Gam2 Phi^n du
//   E[p^3]          = (1/2) int Gam3 Phi^n du
//   E[p^4]          = (1/6) int Gam4 Phi^n du
//   E[p_1^2 p_2^2]  = (1/6) int Gam2^2 Phi^(n-1) du
//   Var p           = (n/L) int D Phi^(n-1) du,   D = Gam2 Phi - Gam1^2 >= 0
//   E[p^2 (1 - 2p + Q)] = (1/6) int (2n Gam2^2 Phi^(n-1) + n(n-1) Gam2 Gam1^2 Phi^(n-2)) du
// with Q = sum_j p_j^2. The representation is exact for every L >= 2 and every s >= 0;
// every integrand is positive, so the variance and the gradient factor (both tiny in
// some limit) are computed without cancellation.
//
// Numerics. The outer integral is the trapezoidal rule in u (spectrally accurate: the
// integrands are analytic in a strip and decay on both sides), walked outwards from the
// bulk until the terms are negligible. The inner Gaussian expectations use
//  - for sigma <= 2, the trapezoidal rule in z on [-9.5, 9.5 + 4 sigma] (the 4 sigma covers
//    the tilt e^{4 sigma z} of Gam4) with nodes shared by every u;
//  - for sigma > 2, where F(u + sigma z) is a step of width 1/sigma in z: closed forms for
//    x = u + sigma z < -14 (there 1 - F = e^x - e^{2x}/2 + e^{3x}/6 to 1e-20), 10-point
//    Gauss-Legendre panels of width 1/2 in x on [-14, 6], and F = 0 above x = 6 (F < 1e-175 there).
// Node counts and the step were chosen by convergence studies against independent
// references (tests/components/softmax.test.cpp); float is computed in double. The
// transcendentals of the inner sums are evaluated once per lattice point / fixed panel node
// and reused by every u (shared_nodes, split_nodes).
//
// Fast path: for large L (and s not too large) softmax_moments / softmax_var / softmax_grad
// use an asymptotic expansion in 1/L (namespace softmax_series below), with an error estimate
// from its last terms; it agrees with the quadrature to ~1e-14 wherever it is taken and the
// quadrature (softmax_moments_exact) is the fallback everywhere else.
#include <cmath>
#include <limits>
#include <type_traits>

#include <boost/math/constants/constants.hpp>
#include <boost/math/quadrature/gauss.hpp>

#include "sigprop/core/config.hpp"
#include "sigprop/detail/normal_tail.hpp"

namespace sigprop::detail {

/// The softmax moments one entry p_i of a row of L probabilities needs.
template <class T>
struct softmax_moment_set {
    T p2;    ///< E[p_i^2]
    T p3;    ///< E[p_i^3]
    T p2q;   ///< E[p_i^2 sum_j p_j^2]
    T var;   ///< Var p_i = E[p_i^2] - 1/L^2, computed without the cancellation
    T grad;  ///< E[p_i^2 (1 - 2 p_i + sum_j p_j^2)] = p2 - 2 p3 + p2q, without cancellation
};

/// The precision the softmax quadrature runs in: float is promoted to double.
template <class T>
using softmax_work_t = std::conditional_t<std::is_same_v<T, float>, double, T>;

namespace softmax_quadrature {

/// The inner Gaussian expectations at one u (see the header comment).
template <class W>
struct inner {
    W phi{0};   ///< Phi(u) = E[F]
    W tail{0};  ///< 1 - Phi(u) = E[1 - F], accurate when it is tiny
    W g1{0}, g2{0}, g3{0}, g4{0};
    W d{0};     ///< Gam2 Phi - Gam1^2
};

/// F(x) = exp(-e^x) and 1 - F(x), each with full relative precision, from ex = e^x.
/// F is flushed to 0 once it is below about min^0.85 (e^{-600} in double): such a node adds
/// nothing at the working precision, and its subnormal products would cost ~100 cycles each.
template <class W>
SIGPROP_HD void gumbel_pair(W ex, W& f, W& c) noexcept {
    using std::exp;
    using std::expm1;
    const W flush = W(-0.85 * 0.6931471805599453 * std::numeric_limits<W>::min_exponent);
    if (ex > flush) {
        f = W(0);
        c = W(1);
    } else if (ex < W(0.693)) {
        c = -expm1(-ex);
        f = W(1) - c;
    } else {
        f = exp(-ex);
        c = W(1) - f;
    }
}

inline constexpr int max_shared_nodes = 400;
inline constexpr int lattice_slots = 512;  // ring of F values, > max_shared_nodes

/// F, 1 - F and e^x on the lattice x_l = x0 + l delta, computed once and reused by every u
/// (see shared_nodes): a ring of slots tagged by the lattice index they hold.
template <class W>
struct lattice_cache {
    long long tag[lattice_slots];
    W f[lattice_slots], c[lattice_slots], ex[lattice_slots];
    SIGPROP_HD lattice_cache() noexcept {
        for (int i = 0; i < lattice_slots; ++i) tag[i] = (long long)(-1) << 62;
    }
};

/// Trapezoidal nodes in z shared by every u (sigma <= 2): weights h phi(z_j), e^{sigma z_j}
/// and e^{sigma z_j} - 1. The z step is chosen so that sigma h_z = h_u / k for an integer k
/// (h_u the outer step): then x = u + sigma z at outer node i and inner node j is the lattice
/// point l = i k + j, and F(x) = exp(-e^x), the only transcendental of the inner sums, is
/// computed once per lattice point instead of once per (u, z) pair (a node is reused by about
/// count / k outer nodes). Without overlap (tiny sigma) the lattice is not used.
template <class W>
struct shared_nodes {
    int count{0};
    int k{0};  ///< lattice points per outer step; 0: no lattice
    W x0{0}, delta{0};
    W w[max_shared_nodes];
    W e[max_shared_nodes];
    W em1[max_shared_nodes];

    SIGPROP_HD shared_nodes(W sigma, bool active, W hu, W u0) noexcept {
        using std::ceil;
        using std::exp;
        using std::expm1;
        using std::sqrt;
        if (!active) return;
        // The step the convergence study chose: 0.3/sigma above sigma = 0.6, else 0.5.
        const W hmax = sigma > W(0.6) ? W(0.3) / sigma : W(0.5);
        const W lo = W(-9.5), hi = W(9.5) + W(4) * sigma;
        W h = hmax;
        const W kk = ceil(hu / (sigma * hmax));
        if (kk <= W(64) && (hi - lo) * sigma > W(2) * hu) {
            k = int(kk);
            h = hu / (kk * sigma);
            delta = hu / kk;
            x0 = u0 + sigma * lo;
        }
        const W c = h / sqrt(W(2) * boost::math::constants::pi<W>());
        for (; count < max_shared_nodes; ++count) {
            const W z = lo + W(count) * h;
            if (z > hi) break;
            w[count] = c * exp(-z * z / W(2));
            e[count] = exp(sigma * z);
            em1[count] = expm1(sigma * z);
        }
    }

    /// The inner sums at outer node i (u = u0 + i hu) from per-node F, 1 - F and e^x.
    template <class Get>
    SIGPROP_HD inner<W> sum(W eu, Get&& get) const noexcept {
        inner<W> r;
        W f[max_shared_nodes];
        W m = 0;
        for (int j = 0; j < count; ++j) {
            W ex, c;
            get(j, ex, f[j], c);
            r.tail += w[j] * c;
            const W a = w[j] * f[j];
            r.phi += a;
            m += a * em1[j];
            const W a1 = a * ex, a2 = a1 * ex, a3 = a2 * ex;
            r.g1 += a1;
            r.g2 += a2;
            r.g3 += a3;
            r.g4 += a3 * ex;
        }
        if (!(r.phi > W(0))) return r;
        // Gam2 Phi - Gam1^2 = e^{2u} Phi sum_j w_j F_j (em1_j - m)^2 with m the F-weighted
        // mean of e^{sigma z} - 1: a two-pass variance, exact to rounding as sigma -> 0.
        m /= r.phi;
        W v = 0;
        for (int j = 0; j < count; ++j) v += w[j] * f[j] * (em1[j] - m) * (em1[j] - m);
        r.d = eu * eu * r.phi * v;
        return r;
    }

    SIGPROP_HD inner<W> at(W u) const noexcept {
        using std::exp;
        const W eu = exp(u);
        return sum(eu, [&](int j, W& ex, W& f, W& c) noexcept {
            ex = eu * e[j];
            gumbel_pair(ex, f, c);
        });
    }

    /// At outer node i through the lattice (requires k > 0).
    SIGPROP_HD inner<W> at_node(int i, W u, lattice_cache<W>& cache) const noexcept {
        using std::exp;
        const long long base = (long long)i * k;
        // lattice_slots is a power of 2: l & (slots - 1) is l mod slots, also for l < 0.
        for (int j = 0; j < count; ++j) {
            const long long l = base + j;
            const int slot = int(l & (lattice_slots - 1));
            if (cache.tag[slot] != l) {
                cache.tag[slot] = l;
                cache.ex[slot] = exp(x0 + W(l) * delta);
                gumbel_pair(cache.ex[slot], cache.f[slot], cache.c[slot]);
            }
        }
        return sum(exp(u), [&](int j, W& ex, W& f, W& c) noexcept {
            const int slot = int((base + j) & (lattice_slots - 1));
            ex = cache.ex[slot];
            f = cache.f[slot];
            c = cache.c[slot];
        });
    }
};

/// int_{-inf}^{za} e^{j (u + sigma z)} phi(z) dz = e^{ju + j^2 s/2} Phi(za - j sigma), with
/// the exponent arranged so that nothing overflows (x_a = u + sigma za).
template <class W>
SIGPROP_HD W tilted_lower(int j, W u, W sigma, W za, W xa) noexcept {
    using std::exp;
    using std::log;
    const W y = za - W(j) * sigma;
    if (y > W(-5)) return exp(W(j) * u + W(j * j) * sigma * sigma / W(2) + log_normal_cdf(y));
    return exp(W(j) * xa - za * za / W(2) - boost::math::constants::log_root_two_pi<W>()) *
           normal_mills_ratio(-y);
}

/// The x < 6 panel nodes of split_at, fixed for all u: 10-point Gauss-Legendre on panels of
/// width 1/2 aligned on [-14, 6], with e^x, F and 1 - F tabulated once per call (only the
/// Gaussian weight depends on u).
inline constexpr int split_panels = 40;

template <class W>
struct split_nodes {
    W x[split_panels * 10], ex[split_panels * 10], f[split_panels * 10], c[split_panels * 10];
    W wt[split_panels * 10];  ///< Gauss-Legendre weight times the panel half-width 1/4
    SIGPROP_HD split_nodes() noexcept {
        using std::exp;
        using rule = boost::math::quadrature::gauss<W, 10>;
        for (int p = 0; p < split_panels; ++p) {
            const W mid = W(-14) + W(p) / W(2) + W(0.25);
            for (int i = 0; i < 10; ++i) {
                const int k = i / 2, at = p * 10 + i;
                x[at] = mid + (i % 2 ? W(0.25) : W(-0.25)) * rule::abscissa()[std::size_t(k)];
                wt[at] = W(0.25) * rule::weights()[std::size_t(k)];
                ex[at] = exp(x[at]);
                gumbel_pair(ex[at], f[at], c[at]);
            }
        }
    }
};

/// The inner expectations at u for sigma > 2, by panels in x (see the header comment). The
/// panels actually used are those of the fixed grid meeting [u - 9.5 sigma, u + (9.5 + 4 sigma)
/// sigma] (whole panels: a little more of the negligible Gaussian tail than needed).
template <class W>
SIGPROP_HD inner<W> split_at(W u, W sigma, const split_nodes<W>& sn) noexcept {
    using std::ceil;
    using std::exp;
    using std::floor;
    using std::sqrt;
    const W xa = W(-14), zmax = W(9.5);
    inner<W> r;
    // x < xa: F = 1 - e^x + e^{2x}/2 - e^{3x}/6, so every moment is a sum of tilted tails.
    const W za = (xa - u) / sigma;
    W mom[8];
    for (int j = 0; j < 8; ++j) mom[j] = tilted_lower(j, u, sigma, za, xa);
    r.phi = mom[0] - mom[1] + mom[2] / W(2) - mom[3] / W(6);
    r.tail = mom[1] - mom[2] / W(2) + mom[3] / W(6);
    W* g[4] = {&r.g1, &r.g2, &r.g3, &r.g4};
    for (int k = 1; k <= 4; ++k)
        *g[k - 1] = mom[k] - mom[k + 1] + mom[k + 2] / W(2) - mom[k + 3] / W(6);
    // xa <= x <= top: whole panels of the fixed grid within the Gaussian bulk in z.
    const W lo = u - zmax * sigma, hi = u + (zmax + W(4) * sigma) * sigma;
    const W plo = floor(W(2) * (lo - xa)), phi_ = ceil(W(2) * (hi - xa));
    const int p0 = plo > W(0) ? int(plo) : 0;
    const int p1 = phi_ < W(split_panels) ? int(phi_) : split_panels;
    const W top = p1 > p0 ? xa + W(p1) / W(2) : (p0 >= split_panels ? W(6) : xa);
    const W scale = W(1) / (sigma * sqrt(W(2) * boost::math::constants::pi<W>()));
    const W inv_s = W(1) / sigma;
    for (int at = p0 * 10; at < p1 * 10; ++at) {
        const W z = (sn.x[at] - u) * inv_s;
        const W wt = sn.wt[at] * scale * exp(-z * z / W(2));
        r.tail += wt * sn.c[at];
        const W ex = sn.ex[at];
        const W a0 = wt * sn.f[at], a1 = a0 * ex, a2 = a1 * ex, a3 = a2 * ex;
        r.phi += a0;
        r.g1 += a1;
        r.g2 += a2;
        r.g3 += a3;
        r.g4 += a3 * ex;
    }
    // x > top: F = 0 there (or the Gaussian weight is negligible), 1 - F = 1.
    r.tail += exp(log_normal_cdf(-(top - u) / sigma));
    const W d = r.g2 * r.phi - r.g1 * r.g1;
    r.d = d > W(0) ? d : W(0);
    return r;
}

/// The seven outer integrals (without the step factor).
template <class W>
struct sums {
    W j2{0}, j3{0}, j4{0}, k22{0}, k211{0}, jd{0};
};

}  // namespace softmax_quadrature

// ---------------------------------------------------------------------------------------
// Large-L fast path: the asymptotic expansion in 1/L (our derivation, docs/theory/softmax.md).
//
// With X = e^{sigma z}, mu = E X = e^{s/2} and the tilting identity
// E[X^a h(X)] = E[X^a] E[h(e^{a s} X)], every moment needed is a constant times
//   E[(1 + zeta)^{-K}],  zeta = (c X_1 + ... + c X_q + S_m) / (m mu) - 1,
// S_m a sum of m i.i.d. copies of X, q in {1, 2} tilted entries, c = e^{a s}. zeta is a sum of
// independent terms, so its cumulants are explicit: mean k1 = q c / m and, for r >= 2,
//   k_r = kt_r (m + q c^r) / m^r,  kt_r = the r-th cumulant of X / mu.
// Taking the mean out exactly, E[(1 + zeta)^{-K}] = (1 + k1)^{-K} sum_j C(-K, j) M_j with M_j
// the central moments of xi = (zeta - k1)/(1 + k1), obtained from its cumulants by
// M_j = sum_{i <= j-2} C(j-1, i) k_{j-i} M_i. Collecting the terms by their power of x = 1/m
// (k_r contributes at orders r - 1 and r; M_j starts at order ceil(j/2)) gives the series
// 1 + t_1 + t_2 + ..., an asymptotic (divergent) series: t_d grows roughly like
// e^{d^2 s / 2} d! / m^d. It is summed order by order and stopped at the first order d >= 2
// where |t_{d-1}| + |t_d| is below the requested absolute tolerance; |t_d| is returned as
// the error estimate (the neglected remainder is about |t_{d+1}|, smaller still). If that
// does not happen by max_order, the caller falls back to the quadrature.
namespace softmax_series {

inline constexpr int max_order = 12;
inline constexpr int max_cumulant = max_order + 1;

/// Scaled cumulants kt_r / (r - 1)! of X / mu, X = e^{sigma z}, from the raw moments
/// 1 + d_r = e^{r (r - 1) s / 2}, with d_r built from expm1(s) by products, so that every kt_r
/// has an absolute error of order eps * s and what vanishes as s -> 0 is computed without
/// cancellation. The recursion kt_r = m_r - sum_{i=1}^{r-1} C(r-1, i-1) kt_i m_{r-i}
/// (kt_1 = 1, m_r = 1 + d_r), divided by (r - 1)!, needs no binomials:
///   K_r = (d_r - d_{r-1}) / (r-1)! - sum_{i=2}^{r-1} K_i (1 + d_{r-i}) / (r-i)!.
template <class W>
struct lognormal_cumulants {
    W K[max_cumulant + 1]{};  ///< K_r = kt_r / (r - 1)!, r >= 2

    SIGPROP_HD explicit lognormal_cumulants(W s) noexcept {
        using std::expm1;
        W d[max_cumulant + 1], inv_fact[max_cumulant + 1];
        const W g1 = expm1(s);
        d[0] = 0;
        d[1] = 0;
        inv_fact[0] = 1;
        W g = g1;  // e^{r s} - 1 for the current r
        for (int r = 1; r < max_cumulant; ++r) {
            d[r + 1] = d[r] + g + d[r] * g;  // e^{(r+1) r s/2} = e^{r (r-1) s/2} e^{r s}
            g = g + g1 + g * g1;
        }
        for (int r = 1; r <= max_cumulant; ++r) inv_fact[r] = inv_fact[r - 1] / W(r);
        for (int r = 2; r <= max_cumulant; ++r) {
            W acc = (d[r] - d[r - 1]) * inv_fact[r - 1];
            for (int i = 2; i <= r - 1; ++i) acc -= K[i] * (W(1) + d[r - i]) * inv_fact[r - i];
            K[r] = acc;
        }
    }
};

/// Result of one series: sum_{d >= 1} t_d (the series minus its leading 1), the error
/// estimate |t_last|, the mean factor 1 + k1, and whether the tolerance was reached.
template <class W>
struct series_value {
    W tail{0};
    W err{0};
    W mean{1};
    bool ok{false};
};

/// E[(1 + zeta)^{-K}] = mean^{-K} (1 + tail) for q tilted entries of tilt c over m others
/// (see above), to the absolute tolerance abs_tol on tail. Works with the scaled moments
/// nu_j = M_j / j!, for which the moment recursion reads
/// nu_j = (1/j) sum_{i <= j-2} (kappa_{j-i} / (j-i-1)!) nu_i, and C(-K, j) M_j = (-1)^j (K)_j nu_j
/// with the rising factorial (K)_j = K (K+1) ... (K+j-1).
template <class W>
SIGPROP_HD series_value<W> neg_power(const lognormal_cumulants<W>& cum, int K, W m, int q, W c,
                                     W abs_tol) noexcept {
    using std::fabs;
    series_value<W> out;
    const W x = W(1) / m;
    out.mean = W(1) + W(q) * c * x;
    const W inv = W(1) / out.mean;
    // Cumulant r of xi over (r - 1)!: a_r at order r - 1 and b_r at order r.
    W a[max_cumulant + 1]{}, b[max_cumulant + 1]{};  // entries 0 and 1 are never read
    {
        W xa = x * inv * inv;  // x^{r-1} inv^r at r = 2
        W cb = c * x * inv;    // (c x inv)^r, built up
        cb = cb * cb;
        for (int r = 2; r <= max_cumulant; ++r) {
            a[r] = cum.K[r] * xa;
            b[r] = cum.K[r] * W(q) * cb;
            xa *= x * inv;
            cb *= c * x * inv;
        }
    }
    // nu[j][e]: order-e part of nu_j, written for 2 <= j <= 2e; nu_0 = 1, nu_1 = 0.
    constexpr int J = 2 * max_order;
    W nu[J + 1][max_order + 1];
    W prev = 0;
    for (int d = 1; d <= max_order; ++d) {
        W t = 0;
        W rising = W(K);  // (K)_j, built up from j = 1
        for (int j = 2; j <= 2 * d; ++j) {
            rising *= W(K + j - 1);
            W v = 0;
            // a-terms: r = j - i, order e = d - r + 1 >= 0, nonzero only for i = 0 (e = 0)
            // or 2 <= i <= 2e.
            if (j <= d + 1 && j - 1 == d) v += a[j];  // i = 0: nu_0 has order 0 only
            // i >= 2 with nu_i of order ea = d - (j - i) + 1 written (1 <= ea, i <= 2 ea), and
            // likewise eb = d - (j - i) for the b-terms: the loop bounds below.
            const int ia = j - d > 2 * (j - d - 1) ? j - d : 2 * (j - d - 1);
            for (int i = ia > 2 ? ia : 2; i <= j - 2; ++i) v += a[j - i] * nu[i][d - j + i + 1];
            const int ib = j - d + 1 > 2 * (j - d) ? j - d + 1 : 2 * (j - d);
            for (int i = ib > 2 ? ib : 2; i <= j - 2; ++i) v += b[j - i] * nu[i][d - j + i];
            if (j == d) v += b[j];  // i = 0, order e = d - j = 0
            v /= W(j);
            nu[j][d] = v;
            t += (j % 2 ? -rising : rising) * v;
        }
        out.tail += t;
        if (!(t - t == W(0))) return out;  // overflow or NaN (no numeric_limits: device code)
        if (d >= 2 && fabs(prev) + fabs(t) <= abs_tol) {
            out.err = fabs(t);
            out.ok = true;
            return out;
        }
        prev = t;
    }
    return out;
}

/// Largest s for which the expansion is tried (beyond it the series cannot reach double
/// precision for any representable L, and its terms would overflow). A function, not a
/// constexpr variable, so that W may be a non-literal type (Boost.Multiprecision).
template <class W>
SIGPROP_HD W max_s() noexcept {
    return W(3);
}

/// Smallest L for which the expansion is tried.
inline constexpr int min_L = 8;

/// Var p by the expansion: var = x^2 [e^s (1 + e^{2s} x)^{-2} (1 + tail) - (1 + x)^{-2}],
/// x = 1/(L - 1), with the s -> 0 cancellation removed analytically. Returns false when the
/// estimated relative error exceeds tol.
template <class W>
SIGPROP_HD bool var(const lognormal_cumulants<W>& cum, int L, W s, W tol, W& v, W& err) noexcept {
    using std::exp;
    using std::expm1;
    using std::fabs;
    const W n = W(L - 1), x = W(1) / n;
    const W e2 = exp(W(2) * s), eh = exp(s / W(2));
    const W m2 = W(1) + e2 * x, m0 = W(1) + x;
    // e^s m2^{-2} - m0^{-2} = (eh m0 - m2)(eh m0 + m2) / (m0 m2)^2, eh m0 - m2 without cancellation.
    const W diff = expm1(s / W(2)) - x * eh * expm1(W(1.5) * s);
    const W lead = diff * (eh * m0 + m2) / (m0 * m0 * m2 * m2);
    const W pre = eh * eh / (m2 * m2);
    if (!(lead > W(0))) return false;
    const series_value<W> t = neg_power(cum, 2, n, 1, e2, tol * lead / pre);
    if (!t.ok) return false;
    v = x * x * (lead + pre * t.tail);
    err = x * x * pre * t.err;
    return true;
}

/// The remaining moments by the expansion: p2 = E[p^2], p3, p2q = E[p^4] + (L-1) E[p_1^2 p_2^2],
/// grad = p2 - 2 p3 + p2q; each to relative tolerance tol (estimated). Returns false otherwise.
/// With each_term = false only grad is wanted, and the smaller terms (p3, p^4, p_1^2 p_2^2,
/// of relative size O(1/L)) are asked for tol relative to grad, not to themselves.
template <class W>
SIGPROP_HD bool higher(const lognormal_cumulants<W>& cum, int L, W s, W tol, W& p2, W& p3, W& p2q,
                       W& grad, bool each_term = true) noexcept {
    using std::exp;
    const W n = W(L - 1), x = W(1) / n, y = W(1) / (n - W(1));
    const W e1 = exp(s), e2 = e1 * e1, e3 = e2 * e1, e4 = e2 * e2, e6 = e3 * e3;
    // Leading sizes, for the absolute tolerances of the four series.
    const W c2 = e1 * x * x / ((W(1) + e2 * x) * (W(1) + e2 * x));
    const W m3 = W(1) + e3 * x, m4 = W(1) + e4 * x, m22 = W(1) + W(2) * e2 * y;
    const W c3 = e3 * x * x * x / (m3 * m3 * m3);  // E[p^3] = c3 (1 + tail3), and so on
    const W c4 = e6 * x * x * x * x / (m4 * m4 * m4 * m4);
    const W c22 = n * e2 * y * y * y * y / (m22 * m22 * m22 * m22);
    const W tq = tol / W(4);
    const W g0 = c2 - W(2) * c3 + c4 + c22;  // grad to leading order, > 0 for the L used here
    if (!(g0 > W(0))) return false;
    const series_value<W> t2 = neg_power(cum, 2, n, 1, e2, tq);
    if (!t2.ok) return false;
    const series_value<W> t3 = neg_power(cum, 3, n, 1, e3, each_term ? tq : tq * g0 / c3);
    if (!t3.ok) return false;
    const series_value<W> t4 = neg_power(cum, 4, n, 1, e4, each_term ? tq : tq * g0 / c4);
    if (!t4.ok) return false;
    const series_value<W> t22 = neg_power(cum, 4, n - W(1), 2, e2, each_term ? tq : tq * g0 / c22);
    if (!t22.ok) return false;
    p2 = c2 * (W(1) + t2.tail);
    p3 = c3 * (W(1) + t3.tail);
    p2q = c4 * (W(1) + t4.tail) + c22 * (W(1) + t22.tail);
    grad = p2 - W(2) * p3 + p2q;
    return true;
}

}  // namespace softmax_series

/// The relative tolerance asked of the large-L expansion: 64 eps of the working precision
/// (1.4e-14 in double); the neglected remainder is well below it (see softmax_series).
/// A function for the same reason as softmax_series::max_s.
template <class W>
SIGPROP_HD W softmax_series_tol() noexcept {
    return std::numeric_limits<W>::epsilon() * W(64);
}

/// True when the large-L expansion is worth trying at (L, s): cheap screen on the size of
/// the smallest term, about min_d e^{(d+1)^2 s/2} / (L - 1)^d, against the tolerance.
template <class W>
SIGPROP_HD bool softmax_series_candidate(int L, W s) noexcept {
    using std::log;
    if (L < softmax_series::min_L || !(s > W(0)) || !(s <= softmax_series::max_s<W>())) return false;
    const W lnn = log(W(L - 1)), lt = log(softmax_series_tol<W>());
    for (int d = 2; d <= softmax_series::max_order; ++d)
        if (W((d + 1) * (d + 1)) * s / W(2) - W(d) * lnn < lt) return true;
    return false;
}

/// The exact (quadrature) evaluation of every moment; the fallback of softmax_moments.
template <class T>
SIGPROP_HD softmax_moment_set<T> softmax_moments_exact(int L, T s_in) noexcept;

/// All softmax moments for a row of L entries whose logits have independent variance
/// s = (1 - r) s2 (s >= 0; +inf gives the saturated limit), to about the working precision:
/// by the large-L expansion where its estimated error is below softmax_series_tol, else by
/// the exact representation integrated numerically (see the header comment).
template <class T>
SIGPROP_HD softmax_moment_set<T> softmax_moments(int L, T s_in) noexcept {
    using W = softmax_work_t<T>;
    const W s = W(s_in);
    if (softmax_series_candidate(L, s)) {
        const softmax_series::lognormal_cumulants<W> cum(s);
        W v, err, p2, p3, p2q, grad;
        if (softmax_series::var(cum, L, s, softmax_series_tol<W>(), v, err) &&
            softmax_series::higher(cum, L, s, softmax_series_tol<W>(), p2, p3, p2q, grad))
            return {T(p2), T(p3), T(p2q), T(v), T(grad)};
    }
    return softmax_moments_exact(L, s_in);
}

/// Var p_i alone (what the forward pass needs): the expansion when it is accurate enough,
/// else softmax_moments_exact.
template <class T>
SIGPROP_HD T softmax_var(int L, T s_in) noexcept {
    using W = softmax_work_t<T>;
    const W s = W(s_in);
    if (softmax_series_candidate(L, s)) {
        const softmax_series::lognormal_cumulants<W> cum(s);
        W v, err;
        if (softmax_series::var(cum, L, s, softmax_series_tol<W>(), v, err)) return T(v);
    }
    return softmax_moments_exact(L, s_in).var;
}

/// The gradient factor E[p_i^2 (1 - 2 p_i + sum_j p_j^2)] alone (what the backward pass needs).
template <class T>
SIGPROP_HD T softmax_grad(int L, T s_in) noexcept {
    using W = softmax_work_t<T>;
    const W s = W(s_in);
    if (softmax_series_candidate(L, s)) {
        const softmax_series::lognormal_cumulants<W> cum(s);
        W p2, p3, p2q, grad;
        if (softmax_series::higher(cum, L, s, softmax_series_tol<W>(), p2, p3, p2q, grad, false))
            return T(grad);
    }
    return softmax_moments_exact(L, s_in).grad;
}

template <class T>
SIGPROP_HD softmax_moment_set<T> softmax_moments_exact(int L, T s_in) noexcept {
    using W = softmax_work_t<T>;
    using std::exp;
    using std::log;
    using std::log1p;
    using std::sqrt;
    namespace q = softmax_quadrature;
    const W s = W(s_in);
    const W Lw = W(L);
    if (L <= 1) return {T(1), T(1), T(1), T(0), T(0)};
    // s = 0: every p_i = 1/L exactly.
    if (!(s > W(0))) {
        const W p = W(1) / Lw;
        return {T(p * p), T(p * p * p), T(p * p * p), T(0), T(p * p * (Lw - W(1)) / Lw)};
    }
    // s = inf: the row is one-hot at its largest logit.
    if (!(s <= std::numeric_limits<W>::max())) {
        const W p = W(1) / Lw;
        return {T(p), T(p), T(p), T(p * (W(1) - p)), T(0)};
    }
    const W sigma = sqrt(s);
    const W n = Lw - W(1);
    const bool shared = sigma <= W(2);
    // The bulk of the u integrand sits where n (1 - Phi(u)) ~ 1.
    const W u0 = shared ? -log(n) - s / W(2) : -sigma * sqrt(W(2) * log(n + W(1)));
    // Step: 0.2 reaches double precision, 0.15 long double; scaled with the width of the
    // bulk, sigma / sqrt(1 + 2 ln L), once that exceeds 1.
    const W h0 = std::numeric_limits<W>::digits > 53 ? W(0.15) : W(0.2);
    const W width = sigma / sqrt(W(1) + W(2) * log(n + W(1)));
    const W h = shared || width < W(1) ? h0 : h0 * width;
    const W tol = std::numeric_limits<W>::epsilon() / W(64);

    q::sums<W> acc;
    // Adds the terms at outer node i, u = u0 + i h, with the inner expectations from eval;
    // returns true while some term is not yet negligible.
    auto add = [&](auto& eval, int i) noexcept {
        const W u = u0 + W(i) * h;
        const q::inner<W> in = eval(i, u);
        if (!(in.phi > W(0))) return false;
        const W lphi = in.tail < W(0.5) ? log1p(-in.tail) : log(in.phi);
        const W pn = exp(n * lphi), pn1 = exp((n - W(1)) * lphi);
        const W pn2 = L >= 3 ? exp((n - W(2)) * lphi) : W(0);
        const W t[6] = {in.g2 * pn, in.g3 * pn, in.g4 * pn, in.g2 * in.g2 * pn1,
                        in.g2 * in.g1 * in.g1 * pn2, in.d * pn1};
        W* a[6] = {&acc.j2, &acc.j3, &acc.j4, &acc.k22, &acc.k211, &acc.jd};
        bool more = false;
        for (int j = 0; j < 6; ++j) {
            *a[j] += t[j];
            if (t[j] > tol * *a[j]) more = true;
        }
        return more;
    };
    auto walk = [&](auto&& eval) noexcept {
        constexpr int max_steps = 100000;
        add(eval, 0);
        for (int k = 1; k < max_steps && add(eval, k); ++k) {
        }
        for (int k = 1; k < max_steps && add(eval, -k); ++k) {
        }
    };
    if (shared) {
        const q::shared_nodes<W> nodes(sigma, true, h, u0);
        q::lattice_cache<W> cache;
        walk([&](int i, W u) noexcept { return nodes.k > 0 ? nodes.at_node(i, u, cache) : nodes.at(u); });
    } else {
        const q::split_nodes<W> sn;
        walk([&](int, W u) noexcept { return q::split_at(u, sigma, sn); });
    }
    softmax_moment_set<T> m;
    m.p2 = T(h * acc.j2);
    m.p3 = T(h * acc.j3 / W(2));
    m.p2q = T(h * (acc.j4 + n * acc.k22) / W(6));
    m.var = T(h * n * acc.jd / Lw);
    m.grad = T(h * (W(2) * n * acc.k22 + n * (n - W(1)) * acc.k211) / W(6));
    return m;
}

/// E[p_i^2] for a softmax over L entries with independent logit variance s = (1 - r) s2.
template <class T>
SIGPROP_HD T softmax_ep2(int L, T s) noexcept {
    return softmax_moments(L, s).p2;
}

/// E[p_i^3] (same arguments).
template <class T>
SIGPROP_HD T softmax_ep3(int L, T s) noexcept {
    return softmax_moments(L, s).p3;
}

/// E[p_i^2 sum_j p_j^2] (same arguments).
template <class T>
SIGPROP_HD T softmax_ep2q(int L, T s) noexcept {
    return softmax_moments(L, s).p2q;
}

}  // namespace sigprop::detail
