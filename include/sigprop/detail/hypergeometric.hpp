#pragma once
// The Gauss hypergeometric function F_c(z) = 2F1(1/2, 1/2; c; z) for half-integer and
// integer c = m/2 >= 3/2 and 0 <= z <= 1, together with the step F_{c-1}(z) - F_c(z).
// LayerNorm needs it at z = r^2 for the mean cosine of two correlated Gaussian vectors
// (docs/theory/layer_norm.md).
//
// Two methods, each with a proof of its accuracy:
// - z <= 1/2, or c >= 21: the power series in z, summed until a rigorous bound on the
//   remainder is below the working precision (all terms are positive);
// - z > 1/2 and c < 21 (where the series converges like k^-c and would need up to
//   ~10^16 terms at z = 1): closed forms at the two smallest c of the chain (arcsin for
//   half-integer c, the arithmetic-geometric mean for integer c) and then Gauss's
//   contiguous relation in c, which for z >= 1/2 adds positive terms only, so each step
//   costs a few roundings and nothing cancels.
// Both are allocation-free and noexcept; the cost is at most ~60 series terms or ~20
// recurrence steps.
#include <cmath>
#include <limits>

#include "sigprop/core/config.hpp"

namespace sigprop::detail {

/// F_c(z) and F_{c-1}(z) - F_c(z) (>= 0; +infinity for c = 3/2 at z = 1, where F_{1/2}
/// = (1 - z)^{-1/2} diverges).
template <class T>
struct half_half_2f1_pair {
    T value;
    T step_down;
};

// Series: F_c = sum_k u_k with u_k = ((1/2)_k)^2 / ((c)_k k!) z^k and, since
// 1/(c-1)_k = (c-1+k) / ((c-1) (c)_k), F_{c-1} - F_c = sum_k k u_k / (c-1).
// Remainder bounds after term k (c >= 3/2, proved in docs/theory/layer_norm.md):
//   geometric (z < 1): sum_{j>k} u_j <= u_k z/w,     sum_{j>k} j u_j <= k u_k z/w;
//   power     (c > 5/2): sum_{j>k} u_j <= u_k (k+1/2)/(c-3/2),
//                        sum_{j>k} j u_j <= u_k (k+3/2)(k+1/2)/(c-5/2).
template <class T>
SIGPROP_HD half_half_2f1_pair<T> half_half_2f1_series(const T& c, const T& z,
                                                      const T& w) noexcept {
    const T eps = std::numeric_limits<T>::epsilon();
    const T inf = std::numeric_limits<T>::infinity();
    const T geo = w > T(0) ? z / w : inf;
    const bool power = c > T(2.5);
    const T inv_f = power ? T(1) / (c - T(1.5)) : T(0);
    const T inv_s = power ? T(1) / (c - T(2.5)) : T(0);
    T u = T(1), f = T(1), s = T(0);  // s = sum_k k u_k
    for (long k = 1; k < (1L << 22); ++k) {
        const T j = T(k);
        u *= (j - T(0.5)) * (j - T(0.5)) / ((j - T(1) + c) * j) * z;
        f += u;
        s += j * u;
        // The remainders after term k, over u_k: the smaller of the two bounds.
        T rf = geo, rs = j * geo;
        if (power) {
            const T pf = (j + T(0.5)) * inv_f, ps = (j + T(1.5)) * (j + T(0.5)) * inv_s;
            if (pf < rf) rf = pf;
            if (ps < rs) rs = ps;
        }
        if (u * rf <= eps * f && u * rs <= eps * s) break;
        if (!(u > T(0))) break;  // z = 0 or underflow: the rest is zero
    }
    return {f, s / (c - T(1))};
}

// Gauss's contiguous relation in c, with a = b = 1/2:
//   F_{c+1} = c (c-1) / ((c-1/2)^2 z) [ (1-z) F_{c-1} + (2z-1) F_c ],
// positive terms only for z >= 1/2. (1-z) F_{c-1} is carried as one number so that the
// chains can start where F_{c-1} itself is infinite at z = 1.
template <class T>
SIGPROP_HD half_half_2f1_pair<T> half_half_2f1_recurrence(long long m, const T& z,
                                                          const T& w) noexcept {
    using std::atan2;
    using std::sqrt;
    const T inf = std::numeric_limits<T>::infinity();
    T below, below_w, cur, c;  // F_{c-1}, (1-z) F_{c-1}, F_c at the current c
    if (m % 2 == 1) {
        // F_{1/2} = (1-z)^{-1/2} and F_{3/2} = arcsin(sqrt z) / sqrt z, the angle taken
        // as atan2(sqrt z, sqrt w) so that near z = 1 it comes from w, not from 1 - z.
        const T sw = sqrt(w), sz = sqrt(z);
        below = w > T(0) ? T(1) / sw : inf;
        below_w = sw;
        cur = atan2(sz, sw) / sz;
        c = T(1.5);
    } else {
        // F_1 = (2/pi) K(k) = 1 / AGM(1, k') and F_2 = (4 / (pi z)) (E - k'^2 K) with
        // k^2 = z, k'^2 = w. With the AGM's a_j, b_j and c_j (c_1 = (1 - k')/2,
        // c_{j+1} = c_j^2 / (4 a_{j+1})): E = K (1 - z/2 - sum_{j>=1} 2^{j-1} c_j^2), so
        // F_2 = (z - sum_{j>=1} 2^j c_j^2) / (AGM z). At z = 1 the limits are F_2 = 4/pi and
        // (1 - z) F_1 = 0.
        if (w > T(0)) {
            const T kp = sqrt(w);
            T a = (T(1) + kp) / T(2), b = sqrt(kp);  // a_1, b_1
            T cj = z / (T(2) * (T(1) + kp));        // c_1 = (1 - k') / 2
            T p = T(2), s = p * cj * cj;
            const T eps = std::numeric_limits<T>::epsilon();
            for (int j = 0; j < 64 && cj > eps * a; ++j) {
                const T an = (a + b) / T(2);
                b = sqrt(a * b);
                a = an;
                cj = cj * cj / (T(4) * a);
                p *= T(2);
                s += p * cj * cj;
            }
            below = T(1) / a;
            below_w = w / a;
            cur = (z - s) / (a * z);
        } else {
            below = inf;
            below_w = T(0);
            cur = T(4) / T(3.141592653589793238462643383279502884L);
        }
        c = T(2);
    }
    for (long long steps = (m - (m % 2 == 1 ? 3 : 4)) / 2; steps > 0; --steps) {
        const T h = c - T(0.5);
        const T next = c * (c - T(1)) / (h * h * z) * (below_w + (T(2) * z - T(1)) * cur);
        below = cur;
        below_w = w * cur;
        cur = next;
        c += T(1);
    }
    return {cur, below - cur};
}

/// The series of one fixed c = m/2 >= 21 as two polynomials in z, for callers that
/// evaluate F_c at many z (a model evaluates every LayerNorm of one width at a new
/// correlation): the coefficients u_k(1) and k u_k(1) / (c - 1) are formed once, and each
/// evaluation is then two Horner chains without a division. The truncation is the
/// series' power bound at z = 1, where the tail is largest: for z < 1 every dropped term
/// shrinks by z^k, so the dropped part of F_c is at most eps F_c(1) <= 1.02 eps F_c(z)
/// (F_c(z) >= 1, F_c(1) = Gamma(c) Gamma(c-1) / Gamma(c-1/2)^2 <= 1.02 for c >= 21), and
/// that of the step at most eps z S(1) <= 1.2 eps S(z) (S(z) >= z u_1(1), S(1) <= 1.2 u_1(1)
/// for c >= 21). Horner on positive coefficients and z >= 0 adds ~2 ulps per term; for
/// d_model = 1024 (c = 512.5) the polynomials have 8 terms. terms = 0 means this c is not
/// covered (c < 21, where half_half_2f1 switches to the recurrence near z = 1, or a
/// series longer than max_terms) and the caller evaluates half_half_2f1 itself.
template <class T>
struct half_half_2f1_table {
    static constexpr int max_terms = 64;
    int terms{0};
    T f[max_terms]{};     ///< u_k(1): F_c(z) = sum_k f[k] z^k
    T step[max_terms]{};  ///< k u_k(1) / (c - 1): F_{c-1}(z) - F_c(z) = sum_k step[k] z^k
};

template <class T>
half_half_2f1_table<T> half_half_2f1_table_of(long long m) noexcept {
    half_half_2f1_table<T> t;
    if (m < 42) return t;
    const T c = T(m) / T(2), eps = std::numeric_limits<T>::epsilon();
    const T inv_f = T(1) / (c - T(1.5)), inv_s = T(1) / (c - T(2.5));
    T u = T(1), f = T(1), s = T(0);
    t.f[0] = T(1);
    for (int k = 1; k < t.max_terms; ++k) {
        const T j = T(k);
        u *= (j - T(0.5)) * (j - T(0.5)) / ((j - T(1) + c) * j);
        f += u;
        s += j * u;
        t.f[k] = u;
        t.step[k] = j * u / (c - T(1));
        // half_half_2f1_series' power bounds on the tails at z = 1.
        if (u * (j + T(0.5)) * inv_f <= eps * f && u * (j + T(1.5)) * (j + T(0.5)) * inv_s <= eps * s) {
            t.terms = k + 1;
            return t;
        }
    }
    return t;
}

/// F_c(z) and F_{c-1}(z) - F_c(z) from a table with terms > 0, 0 <= z <= 1.
template <class T>
SIGPROP_HD half_half_2f1_pair<T> half_half_2f1(const half_half_2f1_table<T>& t, const T& z) noexcept {
    T f = t.f[t.terms - 1], s = t.step[t.terms - 1];
    for (int k = t.terms - 2; k >= 0; --k) {
        f = f * z + t.f[k];
        s = s * z + t.step[k];
    }
    return {f, s};
}

/// F_c(z) = 2F1(1/2, 1/2; c; z) and F_{c-1}(z) - F_c(z) for c = m/2, m >= 3, 0 <= z <= 1,
/// w = 1 - z (pass it computed without cancellation, e.g. (1 - r)(1 + r) for z = r^2).
template <class T>
SIGPROP_HD half_half_2f1_pair<T> half_half_2f1(long long m, const T& z, const T& w) noexcept {
    if (z <= T(0.5) || m >= 42) return half_half_2f1_series(T(m) / T(2), z, w);
    return half_half_2f1_recurrence(m, z, w);
}

}  // namespace sigprop::detail
