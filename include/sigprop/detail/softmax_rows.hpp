#pragma once
// E[sum_j P_ij^2] of softmax rows of every length n = 1..L at one logit variance, from one
// shared quadrature. Source: the integral representation of softmax_moments.hpp (our
// derivation, docs/theory/softmax.md): for a row of n i.i.d. N(0, s) logits,
//   E[p_1^2] = int Gam2(u) Phi(u)^(n-1) du,
// where Gam2 and Phi are Gaussian expectations that do not depend on n. A causal attention
// block needs this for every row length 1..L at the block's key-specific score variance;
// the delta-method expression (attention_moments.hpp, softmax_sum_p2) is off by 10-30 % at
// s ~ 1 for rows shorter than about e^(2s) * 10 (e.g. n = 8, s = 1: 0.170 against 0.232),
// and calling softmax_moments once per row costs ~60 us each. Here the inner expectations
// are evaluated once per outer node and the powers Phi^(n-1) are built by repeated
// multiplication, so all L rows cost O(nodes * L) multiply-adds after O(nodes) inner sums.
#include <cmath>
#include <limits>
#include <vector>

#include "sigprop/detail/softmax_moments.hpp"

namespace sigprop::detail {

/// out[n - 1] = n E[sum-normalised p^2] = E[sum_j P_j^2] for a softmax over n i.i.d.
/// N(0, s) logits, n = 1..L (out is resized to L). s = 0 gives 1/n; s = inf gives 1.
/// With `grad`, also grad[n - 1] = E[sum_j P_j^2 (1 - 2 P_j + sum_k P_k^2)], the softmax
/// gradient's row statistic (softmax_moment_set::grad times n), from the integral
///   n E[p^2 (1 - 2p + Q)] = (n/6) int (2m Gam2^2 Phi^(m-1) + m (m-1) Gam2 Gam1^2 Phi^(m-2)) du,
/// m = n - 1 (softmax_moments.hpp); s = 0 gives (1 - 1/n)/n, s = inf gives 0, n = 1 gives 0.
/// Host-side (allocates); the node rules are those of softmax_moments_exact with the outer
/// step 0.2 (double precision there), walked from the bulk of the longest row
/// (-ln L - s/2 - 22, where the integrand is e^-44 of its peak) upwards until the n = 2
/// integrand is negligible.
template <class T>
void softmax_row_p2(int L, const T& s_in, std::vector<T>& out, std::vector<T>* grad = nullptr) {
    using W = softmax_work_t<T>;
    using std::exp;
    using std::log;
    using std::log1p;
    using std::sqrt;
    namespace q = softmax_quadrature;
    out.assign(std::size_t(L > 0 ? L : 0), T(1));
    if (grad) grad->assign(out.size(), T(0));
    if (L <= 1) return;
    const W s = W(s_in);
    if (!(s > W(0))) {
        for (int n = 1; n <= L; ++n) {
            out[std::size_t(n - 1)] = T(W(1) / W(n));
            if (grad) (*grad)[std::size_t(n - 1)] = T((W(1) - W(1) / W(n)) / W(n));
        }
        return;
    }
    if (!(s <= std::numeric_limits<W>::max())) return;  // one-hot rows
    const W sigma = sqrt(s);
    const bool shared = sigma <= W(2);
    const W h = W(0.2);
    const W u_lo = shared ? -log(W(L)) - s / W(2) - W(22) : -sigma * sqrt(W(2) * log(W(L))) - W(22);
    const W tol = std::numeric_limits<W>::epsilon() / W(64);
    std::vector<W> g2, phi, g22, g211;
    W acc2 = 0;
    auto add = [&](const q::inner<W>& in, W u) {
        if (!(in.phi > W(0))) return false;
        const W ph = in.tail < W(0.5) ? exp(log1p(-in.tail)) : in.phi;
        g2.push_back(in.g2);
        phi.push_back(ph);
        if (grad) {
            g22.push_back(in.g2 * in.g2);
            g211.push_back(in.g2 * in.g1 * in.g1);
        }
        const W t = in.g2 * ph;  // the n = 2 integrand
        acc2 += t;
        // past the n = 2 bulk (u ~ -s/2) and negligible: stop
        return !(u > -s / W(2) && t < tol * acc2);
    };
    constexpr int max_steps = 100000;
    if (shared) {
        const q::shared_nodes<W> nodes(sigma, true, h, u_lo);
        for (int i = 0; i < max_steps; ++i) {
            const W u = u_lo + W(i) * h;
            if (!add(nodes.at(u), u)) break;
        }
    } else {
        const q::split_nodes<W> sn;
        for (int i = 0; i < max_steps; ++i) {
            const W u = u_lo + W(i) * h;
            if (!add(q::split_at(u, sigma, sn), u)) break;
        }
    }
    std::vector<W> pw(phi);  // Phi^(n-1), starting at n = 2
    std::vector<W> pm(grad ? phi.size() : 0, W(1)), pm2(pm.size(), W(0));  // Phi^(n-2), Phi^(n-3)
    for (int n = 2; n <= L; ++n) {
        W sum = 0, s22 = 0, s211 = 0;
        for (std::size_t k = 0; k < pw.size(); ++k) {
            sum += g2[k] * pw[k];
            if (grad) {
                s22 += g22[k] * pm[k];
                s211 += g211[k] * pm2[k];
                pm2[k] = pm[k];
                pm[k] = pw[k];
            }
            pw[k] *= phi[k];
        }
        const W p2 = W(n) * h * sum;
        out[std::size_t(n - 1)] = T(p2 < W(1) ? p2 : W(1));
        if (grad) {
            const W m = W(n - 1);
            (*grad)[std::size_t(n - 1)] = T(W(n) * h * (W(2) * m * s22 + m * (m - W(1)) * s211) / W(6));
        }
    }
}

}  // namespace sigprop::detail
