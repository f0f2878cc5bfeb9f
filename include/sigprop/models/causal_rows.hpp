#pragma once
// The row averages of causal attention (causal_statistics of multi_head_attention.hpp) in
// O(1) per block instead of O(L), for predict(): a decoder evaluates them for every
// self-attention block at the same L. Our rearrangement of the component's sums
// (docs/theory/models.md section 7), not an approximation.
#include <cstddef>
#include <vector>

#include "sigprop/components/attention.hpp"
#include "sigprop/components/multi_head_attention.hpp"
#include "sigprop/detail/attention_moments.hpp"

namespace sigprop::detail {

/// Suffix sums of the inverse powers up to L: at[j] = sum_{i=j}^{L} (1/i, 1/i^2, 1/i^3),
/// j = 1..L+1 (at[L+1] = 0). Summed from i = L down, the small terms first. One table per
/// sequence length, shared by all causal blocks of a model.
template <class T>
struct inverse_power_tails {
    struct sums {
        T h1{0}, h2{0}, h3{0};
    };
    int L{0};
    std::vector<sums> at;  ///< index j in [0, L+1]; entry 0 unused
};

/// The longest sequence whose table predict() builds (24 MB in double). Longer sequences
/// keep the component's O(L) row loop, so that the memory stays bounded for every valid
/// seq_len.
inline constexpr int max_tabulated_len = 1 << 20;

template <class T>
inverse_power_tails<T> inverse_power_tails_of(int L) {
    inverse_power_tails<T> t;
    t.L = L;
    t.at.resize(std::size_t(L) + 2);
    for (int i = L; i >= 1; --i) {
        const T x = T(1) / T(i), x2 = x * x;
        const auto& next = t.at[std::size_t(i) + 1];
        t.at[std::size_t(i)] = {next.h1 + x, next.h2 + x2, next.h3 + x2 * x};
    }
    return t;
}

// causal_statistics sums, over the rows i = 2..L, terms that are clamped only at small i:
//   P2_i = min(1, e/i * max(1/2, 1 - A/i)),  A = (e - 1)(2e - 1)   (softmax_sum_p2, e = e^sig)
//   tilt_i = max(0, 1 - 2e/i)                                      (best_var_bracket)
// The shrink clamp binds for i <= 2A, the tilt clamp for i <= 2e, and the cap at 1 only
// where e/i > 1, i.e. i < e. Above i0 = floor(max(2A, 2e)) + 1 none binds, and
//   P2_i = e/i - e A/i^2,   P2_i (1 - 1/i) = e/i - e (1 + A)/i^2 + e A/i^3,
//   bracket_i = r (1 + k P2_i) + (1-r)/d [((d-1) + k (d + 4 sig)) P2_i + sig tilt_i + e (1 + sig)/i],
// so the rows above i0 sum to these expressions with 1/i, 1/i^2, 1/i^3 replaced by their
// suffix sums and 1 by the number of those rows. Rows 2..i0 are evaluated one by one as
// the component does: every clamp is continuous, so a row put on the wrong side of a
// threshold by rounding changes nothing beyond rounding. Cancellation is bounded (A/i < 1/2 and 2e/i < 1 above
// i0, each expansion loses at most a small factor). With overflowed scores (e or A
// infinite) i0 = L and the evaluation is the component's.
template <class T>
causal_scores<T> causal_statistics(int d_in, T r, T p, const attention_scores<T>& sc,
                                   const inverse_power_tails<T>& tails) noexcept {
    const int L = tails.L;
    const T d = T(d_in);
    const T inv = T(1) / (T(1) - p);
    const T k = p * inv;
    const T e = sc.e_sig, em1 = e - T(1);
    const T A = mul0(em1, T(2) * em1 + T(1));
    const T edge = max_of(T(2) * A, T(2) * e);
    const int i0 = edge < T(L) ? int(edge) + 1 : L;
    T sp = T(1), spq = T(0), vb = inv;  // row 1
    for (int i = 2; i <= i0; ++i) {
        const T n = T(i);
        const T sp_i = softmax_sum_p2(n, e, em1);
        sp += sp_i;
        spq += sp_i * (T(1) - T(1) / n);
        vb += best_var_bracket(d, n, k, r, sp_i, sc.sig, e);
    }
    if (i0 < L) {  // rows i0+1..L; e, A and sig are finite here
        const auto& tail = tails.at[std::size_t(i0) + 1];
        const T m = T(L - i0);
        const T tail_sp = e * tail.h1 - e * A * tail.h2;
        const T tail_spq = e * tail.h1 - e * (T(1) + A) * tail.h2 + e * A * tail.h3;
        const T tail_w = ((d - T(1)) + k * (d + T(4) * sc.sig)) * tail_sp + sc.sig * (m - T(2) * e * tail.h1) +
                         e * (T(1) + sc.sig) * tail.h1;
        sp += tail_sp;
        spq += tail_spq;
        vb += r * (m + k * tail_sp) + (T(1) - r) * tail_w / d;
    }
    const T nl = T(L);
    causal_scores<T> s{};
    s.h = tails.at[1].h1 / nl;
    s.sum_p2 = sp / nl;
    s.sum_p2q = spq / nl;
    s.var_bracket = vb / nl;
    return s;
}

}  // namespace sigprop::detail
