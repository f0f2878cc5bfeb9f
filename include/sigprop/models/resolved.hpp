#pragma once
// predict_forward_resolved(spec): the forward moments of an encoder or (causal) decoder
// stack with a position-resolved state: the per-position variance and the full L x L token
// covariance of the residual stream, instead of one variance and one pair correlation.
// Derivation, assumptions and measured accuracy: docs/theory/models.md, section 8.
//
// Why: in a causal stack the attention output at position i averages the i tokens of its
// prefix, so an equicorrelated input gives cov(out_i, out_j) ~ r + (1 - r)/max(i, j): early
// pairs become far more correlated than late ones, and the next block's attention weights
// those early tokens more (token 1 is in every prefix). predict() re-equicorrelates after
// every block and under-predicts the growth of correlation and variance (12-layer Pre-LN
// decoder, d = 64, L = 32: 4-6 % low at the top). Short causal rows also break the
// delta-method softmax statistic; here every row length uses the quadrature of
// detail/softmax_rows.hpp.
//
// Cost: O(layers L^2) pair maps (a LayerNorm 2F1 series and an activation correlation per
// token pair and block) and one O(L * nodes) softmax sweep per attention block; measured
// about 19 ms per layer at L = 128 and 150 ms per layer at L = 512 (docs/theory/models.md
// section 8), so a 1000-layer L = 512 model takes minutes. Hence a separate entry point,
// not a mode of predict(), which stays O(layers + L) per causal block.
#include <cmath>
#include <vector>

#include "sigprop/core/errors.hpp"
#include "sigprop/detail/softmax_rows.hpp"
#include "sigprop/models/predict.hpp"

namespace sigprop {

namespace detail {

/// The stream's covariance over the L positions of one unit (row-major, symmetric).
template <class T>
struct resolved_state {
    int L{0};
    std::vector<T> c;  ///< c[i L + j] = Cov(x_i, x_j), c[i L + i] = Var x_i
    T& at(int i, int j) noexcept { return c[std::size_t(i) * std::size_t(L) + std::size_t(j)]; }
    const T& at(int i, int j) const noexcept { return c[std::size_t(i) * std::size_t(L) + std::size_t(j)]; }
};

/// Pooled like the estimator: mean of the variances, mean covariance over ordered pairs
/// i != j, corr = cov / var.
template <class T>
signal<T> pooled(const resolved_state<T>& s) noexcept {
    T v = 0, c = 0;
    for (int i = 0; i < s.L; ++i)
        for (int j = 0; j < s.L; ++j) (i == j ? v : c) += s.at(i, j);
    v /= T(s.L);
    c /= T(s.L) * T(s.L - 1);
    return {T(0), v, v > T(0) ? c / v : T(0)};
}

/// LayerNorm per token: unit variance, and each pair's correlation through the LayerNorm
/// correlation map of that pair (layer_norm_eval, form::best; LN acts on each token alone,
/// so a pair's output correlation depends only on the pair's input correlation).
template <class T>
resolved_state<T> resolved_layer_norm(int d, const T& nu, const resolved_state<T>& x) {
    resolved_state<T> y{x.L, std::vector<T>(x.c.size(), T(1))};
    const half_half_2f1_table<T> series = half_half_2f1_table_of<T>(d + 1);  // as predict(): once per call
    for (int i = 0; i < x.L; ++i)
        for (int j = i + 1; j < x.L; ++j) {
            const T den = std::sqrt(x.at(i, i) * x.at(j, j));
            T r = den > T(0) ? x.at(i, j) / den : T(0);
            r = r > T(1) ? T(1) : (r < T(-1) ? T(-1) : r);
            y.at(i, j) = y.at(j, i) = layer_norm_eval(d, nu, series, signal<T>{T(0), T(1), r}).y.corr;
        }
    return y;
}

// Multi-head self-attention on a branch input with covariance u (our derivation,
// docs/theory/models.md section 8). Heads and the output projection as in
// multi_head_attention.hpp: every unit of the result has one head's covariance times
// d sigma_o^2. One head, row i (0-based) attends to keys 0..n_i - 1 (n_i = i + 1 causal, L
// otherwise). With E[P_ik P_jl] ~ 1/(n_i n_j) (near-uniform attention) plus the same-key
// and score-value couplings of the sequence-averaged form::best:
//   var_i = d sigma_v^2 a_i  vb(n_i; r_i, P2(n_i)),  a_i, r_i: mean variance and pair
//           correlation of row i's keys; vb = best_var_bracket with the exact row P2;
//   cov_ij = d sigma_v^2 [ U(n_i, n_j) / (n_i n_j)
//            + (a - c) ((e^rho - 1)/m + (rho tilt_ij + e^rho rho / m) / d) ],  m = max(n_i, n_j),
// U(n_i, n_j) the sum of u over the two prefixes (2-D prefix sums), a, c the block's mean
// variance and pair covariance, tilt_ij = (1 - e^sig (1/n_i + 1/n_j))_+. The score
// statistics (sig, rho) are those of score_statistics at the block's pooled moments (one
// softmax sweep per block; a per-row key correlation changed the 12-layer result by < 1 %).
template <class T>
resolved_state<T> resolved_attention(const multi_head_attention<T>& m, const resolved_state<T>& u,
                                     std::vector<T>& p2) {
    const int L = u.L;
    const T d = T(m.d_model);
    const signal<T> pu = pooled(u);
    const attention_scores<T> sc = score_statistics(m.d_model, L, pu.var, pu.corr, m.sigma_q, m.sigma_k);
    softmax_row_p2(L, sc.sig, p2);
    const T inv = T(1) / (T(1) - m.p), k = m.p * inv;
    const std::size_t W = std::size_t(L) + 1;
    std::vector<T> pre(W * W, T(0));  // pre[a W + b] = sum_{i < a, j < b} u_ij
    for (int i = 1; i <= L; ++i)
        for (int j = 1; j <= L; ++j)
            pre[std::size_t(i) * W + std::size_t(j)] = u.at(i - 1, j - 1) + pre[std::size_t(i - 1) * W + std::size_t(j)] +
                                                       pre[std::size_t(i) * W + std::size_t(j - 1)] -
                                                       pre[std::size_t(i - 1) * W + std::size_t(j - 1)];
    std::vector<T> trace(std::size_t(L) + 1, T(0));  // trace[a] = sum_{i < a} u_ii
    for (int i = 0; i < L; ++i) trace[std::size_t(i) + 1] = trace[std::size_t(i)] + u.at(i, i);
    const T a_all = pu.var, c_all = pu.var * pu.corr;
    const T scale = mul0(d * m.sigma_o * m.sigma_o, d * m.sigma_v * m.sigma_v);
    resolved_state<T> y{L, std::vector<T>(u.c.size(), T(0))};
    for (int i = 0; i < L; ++i) {
        const int ni = m.causal ? i + 1 : L;
        const T tr = trace[std::size_t(ni)];
        const T all = pre[std::size_t(ni) * W + std::size_t(ni)];
        const T ai = tr / T(ni);
        const T ri = ni > 1 && ai > T(0) ? (all - tr) / (T(ni) * T(ni - 1) * ai) : T(0);
        const T pi = p2[std::size_t(ni - 1)];
        const T vb = ni == 1 ? inv : best_var_bracket(d, T(ni), k, ri, pi, sc.sig, sc.e_sig);
        y.at(i, i) = scale * ai * vb;
        for (int j = i + 1; j < L; ++j) {
            const int nj = m.causal ? j + 1 : L;
            const T mx = T(ni > nj ? ni : nj);
            const T uni = pre[std::size_t(ni) * W + std::size_t(nj)] / (T(ni) * T(nj));
            const T tilt = max_of(T(0), T(1) - sc.e_sig * (T(1) / T(ni) + T(1) / T(nj)));
            const T coupling = (a_all - c_all) * ((sc.e_rho - T(1)) / mx + (sc.rho * tilt + sc.e_rho * sc.rho / mx) / d);
            y.at(i, j) = y.at(j, i) = scale * (uni + coupling);
        }
    }
    return y;
}

/// The FFN acts on each token alone: a pair's output covariance is the chain
/// linear -> activation -> linear of the components applied to that pair's moments. The
/// branch input has one variance at every position here (a LayerNorm output, or in Post-LN
/// a stream that is one), which is what the pair formulas need; their mean is used.
template <class T>
resolved_state<T> resolved_ffn(const transformer_spec<T>& s, const layer_sigmas<T>& w, const resolved_state<T>& u) {
    const int L = u.L;
    const T q = pooled(u).var;
    resolved_state<T> y{L, std::vector<T>(u.c.size(), T(0))};
    auto through = [&](const T& r) {
        const signal<T> mid = forward_impl(linear<T>{s.d_model, s.d_ff, w.ffn1}, signal<T>{T(0), q, r});
        return forward_impl(linear<T>{s.d_ff, s.d_model, w.ffn2}, activation_forward(s.act, mid));
    };
    const signal<T> diag = through(T(0));
    for (int i = 0; i < L; ++i) {
        y.at(i, i) = diag.var;
        for (int j = i + 1; j < L; ++j) {
            const T r = q > T(0) ? u.at(i, j) / q : T(0);
            const signal<T> o = through(r > T(1) ? T(1) : (r < T(-1) ? T(-1) : r));
            y.at(i, j) = y.at(j, i) = o.corr * o.var;
        }
    }
    return y;
}

/// The end of a block: hidden dropout (independent per token: only the variances grow by
/// 1/(1-p)), x <- lambda x + beta f, and in Post-LN the LayerNorm.
template <class T>
void resolved_close(const transformer_spec<T>& s, const T& nu, resolved_state<T>& x, const resolved_state<T>& f) {
    const T l2 = s.lambda * s.lambda, b2 = s.beta * s.beta;
    const T drop = T(1) / (T(1) - s.p_hidden);
    for (int i = 0; i < x.L; ++i)
        for (int j = 0; j < x.L; ++j) x.at(i, j) = l2 * x.at(i, j) + b2 * f.at(i, j) * (i == j ? drop : T(1));
    if (s.norm == norm_placement::post) x = resolved_layer_norm(s.d_model, nu, x);
}

}  // namespace detail

/// Forward moments (mean, var, corr) at every boundary of an encoder or decoder stack, in
/// the order of predict(spec).points (input, after each attention block, after each FFN
/// block, after the final norm), computed with the position-resolved state described
/// above; pooled over positions like the estimator. Every boundary has mean 0. Throws
/// sigprop::invalid_argument for an invalid spec (validate), an encoder-decoder and a
/// nonzero input mean (not supported: a LayerNorm removes a mean that attention would see
/// as a shared component, which the covariance state does not separate).
template <class T>
std::vector<signal<T>> predict_forward_resolved(const transformer_spec<T>& s) {
    using namespace detail;
    validate(s);
    if (s.arch == architecture::encoder_decoder)
        fail("predict_forward_resolved", "arch", static_cast<int>(s.arch), "{encoder, decoder} (an encoder-decoder is not supported)");
    const signal<T> x0 = input_moments(s);
    if (x0.mean != T(0)) fail("predict_forward_resolved", "input.mean", x0.mean, "{0}");
    const int L = s.seq_len;
    const T nu = chi_mean_sq_ratio<T>(s.d_model - 1);
    resolved_state<T> x{L, std::vector<T>(std::size_t(L) * std::size_t(L), x0.corr * x0.var)};
    for (int i = 0; i < L; ++i) x.at(i, i) = x0.var;
    std::vector<signal<T>> out;
    out.reserve(std::size_t(2 * s.layers + 2));
    out.push_back(x0);
    std::vector<T> p2;
    const bool pre = s.norm == norm_placement::pre;
    for (int l = 0; l < s.layers; ++l) {
        const layer_sigmas<T>& w = s.sigmas[std::size_t(l)];
        const multi_head_attention<T> m{s.d_model, s.heads, L, w.q, w.k, w.v, w.o,
                                        s.p_attention, s.arch == architecture::decoder, form::best};
        const resolved_state<T> fa = resolved_attention(m, pre ? resolved_layer_norm(s.d_model, nu, x) : x, p2);
        resolved_close(s, nu, x, fa);
        out.push_back(pooled(x));
        const resolved_state<T> ff = resolved_ffn(s, w, pre ? resolved_layer_norm(s.d_model, nu, x) : x);
        resolved_close(s, nu, x, ff);
        out.push_back(pooled(x));
    }
    if (s.final_norm) out.push_back(pooled(resolved_layer_norm(s.d_model, nu, x)));
    return out;
}

}  // namespace sigprop
