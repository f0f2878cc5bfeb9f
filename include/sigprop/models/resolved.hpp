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
// about 1.3 ms per layer at L = 128 and 21 ms per layer at L = 512 (docs/theory/models.md
// section 8; bench decoder_resolved), so a 1000-layer L = 512 model takes about 20 s. Hence a separate entry point,
// not a mode of predict(), which stays O(layers + L) per causal block. The backward and
// weight-gradient norms on the same state: predict_resolved (resolved_backward.hpp), which
// keeps what it needs of this forward (resolved_block).
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "sigprop/core/errors.hpp"
#include "sigprop/detail/softmax_rows.hpp"
#include "sigprop/models/anisotropy.hpp"
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
/// i != j, corr = cov / var. An overflowed state (whose entries met inf - inf or inf / inf
/// on the way) reports a variance of +infinity and no correlation, never NaN.
template <class T>
signal<T> pooled(const resolved_state<T>& s) noexcept {
    T v = 0, c = 0;
    for (int i = 0; i < s.L; ++i)
        for (int j = 0; j < s.L; ++j) (i == j ? v : c) += s.at(i, j);
    v /= T(s.L);
    c /= T(s.L) * T(s.L - 1);
    if (!(v <= std::numeric_limits<T>::max())) return {T(0), std::numeric_limits<T>::infinity(), T(0)};
    const T r = v > T(0) ? c / v : T(0);
    return {T(0), v, r == r ? r : T(0)};
}

/// LayerNorm per token: unit variance, and each pair's correlation through the LayerNorm
/// correlation map of that pair (layer_norm_eval, form::best; LN acts on each token alone,
/// so a pair's output correlation depends only on the pair's input correlation). With
/// `back`, also the LayerNorm's backward factor per pair (what the resolved backward
/// multiplies the gradient covariance by, docs/theory/models.md section 10):
/// (d-2)/(d-3) / v_i on the diagonal, (d-2)/(d-3) k_g(r_ij) / sqrt(v_i v_j) off it, with
/// k_g the component's gradient correlation factor at the pair's input correlation.
template <class T>
resolved_state<T> resolved_layer_norm(int d, const T& nu, const resolved_state<T>& x,
                                      resolved_state<T>* back = nullptr) {
    resolved_state<T> y{x.L, std::vector<T>(x.c.size(), T(1))};
    const half_half_2f1_table<T> series = half_half_2f1_table_of<T>(d + 1);  // as predict(): once per call
    const T gain = T(d - 2) / T(d - 3);
    if (back) *back = resolved_state<T>{x.L, std::vector<T>(x.c.size(), T(0))};
    for (int i = 0; i < x.L; ++i) {
        if (back) back->at(i, i) = gain / x.at(i, i);  // a vanished variance gives +inf
        for (int j = i + 1; j < x.L; ++j) {
            const T den = std::sqrt(x.at(i, i) * x.at(j, j));
            T r = den > T(0) ? x.at(i, j) / den : T(0);
            r = r > T(1) ? T(1) : (r < T(-1) ? T(-1) : r);
            const ln_eval<T> e = layer_norm_eval(d, nu, series, signal<T>{T(0), T(1), r});
            y.at(i, j) = y.at(j, i) = e.y.corr;
            if (back) back->at(i, j) = back->at(j, i) = gain * e.grad_corr / den;
        }
    }
    return y;
}

// Multi-head self-attention on a branch input with covariance u (our derivation,
// docs/theory/models.md section 8): the covariance of one unit of the heads'
// concatenation (the input of Wo). Heads as in multi_head_attention.hpp; the output
// projection multiplies it by d sigma_o^2 (scaled()). One head, row i (0-based) attends to
// keys 0..n_i - 1 (n_i = i + 1 causal, L otherwise). With E[P_ik P_jl] ~ 1/(n_i n_j)
// (near-uniform attention) plus the same-key and score-value couplings of the
// sequence-averaged form::best:
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
                                     std::vector<T>& p2, attention_scores<T>* scores = nullptr,
                                     std::vector<T>* grad = nullptr) {
    const int L = u.L;
    const T d = T(m.d_model);
    const signal<T> pu = pooled(u);
    const attention_scores<T> sc = score_statistics(m.d_model, L, pu.var, pu.corr, m.sigma_q, m.sigma_k);
    softmax_row_p2(L, sc.sig, p2, grad);
    if (scores) *scores = sc;
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
    const T scale = d * m.sigma_v * m.sigma_v;
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

/// What the resolved backward needs of an FFN block's forward (per pair of positions).
template <class T>
struct resolved_ffn_cache {
    resolved_state<T> act;    ///< E[a_i a_j] of the activation output (one unit; the mean included)
    resolved_state<T> slope;  ///< E[act'(h_i) act'(h_j)] (one unit of the first linear's output h)
};

/// The FFN acts on each token alone: a pair's output covariance is the chain
/// linear -> activation -> linear of the components applied to that pair's moments. The
/// branch input has one variance at every position here (a LayerNorm output, or in Post-LN
/// a stream that is one), which is what the pair formulas need; their mean is used.
/// With `cache`, also the activation's output second moments and slope products per pair
/// (activation_eval and activation_backward, the same expressions as predict()).
template <class T>
resolved_state<T> resolved_ffn(const transformer_spec<T>& s, const layer_sigmas<T>& w, const resolved_state<T>& u,
                               resolved_ffn_cache<T>* cache = nullptr) {
    const int L = u.L;
    const T q = pooled(u).var;
    resolved_state<T> y{L, std::vector<T>(u.c.size(), T(0))};
    if (cache) cache->act = cache->slope = y;
    auto pair = [&](int i, int j, const T& r) {
        const signal<T> mid = forward_impl(linear<T>{s.d_model, s.d_ff, w.ffn1}, signal<T>{T(0), q, r});
        // The backward's slope products only when asked for (activation_eval forms them too).
        const act_eval<T> e = cache ? activation_eval(s.act, mid) : act_eval<T>{activation_forward(s.act, mid)};
        const signal<T> o = forward_impl(linear<T>{s.d_ff, s.d_model, w.ffn2}, e.y);
        const T mu2 = e.y.mean * e.y.mean;
        if (i == j) {
            y.at(i, i) = o.var;
            if (cache) {
                cache->act.at(i, i) = e.y.var + mu2;
                cache->slope.at(i, i) = activation_backward(s.act, mid, e, gradient<T>{T(1), T(0)}).var;
            }
            return;
        }
        y.at(i, j) = y.at(j, i) = o.corr * o.var;
        if (cache) {
            cache->act.at(i, j) = cache->act.at(j, i) = e.y.corr * e.y.var + mu2;
            const gradient<T> g = activation_backward(s.act, mid, e, gradient<T>{T(1), T(1)});
            cache->slope.at(i, j) = cache->slope.at(j, i) = g.var * g.corr;
        }
    };
    for (int i = 0; i < L; ++i) {
        pair(i, i, T(0));  // a token's own variance does not depend on the pair correlation
        for (int j = i + 1; j < L; ++j) {
            const T r = q > T(0) ? u.at(i, j) / q : T(0);
            pair(i, j, r > T(1) ? T(1) : (r < T(-1) ? T(-1) : r));
        }
    }
    return y;
}

/// a * x elementwise (a linear map's d sigma^2), with 0 * inf = 0.
template <class T>
resolved_state<T> scaled(const T& a, resolved_state<T> x) noexcept {
    for (T& v : x.c) v = mul0(a, v);
    return x;
}

/// The end of a block: hidden dropout (independent per token: only the variances grow by
/// 1/(1-p)), x <- lambda x + beta f, and in Post-LN the LayerNorm.
template <class T>
void resolved_close(const transformer_spec<T>& s, const T& nu, resolved_state<T>& x, const resolved_state<T>& f,
                    resolved_state<T>* ln_back = nullptr) {
    const T l2 = s.lambda * s.lambda, b2 = s.beta * s.beta;
    const T drop = T(1) / (T(1) - s.p_hidden);
    for (int i = 0; i < x.L; ++i)
        for (int j = 0; j < x.L; ++j) x.at(i, j) = l2 * x.at(i, j) + b2 * f.at(i, j) * (i == j ? drop : T(1));
    if (s.norm == norm_placement::post) x = resolved_layer_norm(s.d_model, nu, x, ln_back);
}

/// What the resolved backward keeps of one block's forward.
template <class T>
struct resolved_block {
    resolved_state<T> ln;   ///< backward factor of the block's LayerNorm (Pre-LN: of its input; Post-LN: of the sum)
    resolved_state<T> u;    ///< the branch input
    resolved_state<T> mid;  ///< attention: one unit of the heads' concatenation (the input of Wo)
    std::vector<T> p2;      ///< attention: E sum_j P_ij^2 of a row over n = 1..L keys
    std::vector<T> pg;      ///< attention: E sum_j P_ij^2 (1 - 2 P_ij + sum_k P_ik^2), the same rows
    attention_scores<T> sc{};
    resolved_ffn_cache<T> ffn;
    T aniso{1};  ///< anisotropy of the block input's token-specific part (anisotropy.hpp)
};

/// What a branch adds to the stream's pooled variance: the mean of its output variances
/// after the hidden dropout (which resolved_close applies to the diagonal).
template <class T>
T resolved_branch_var(const transformer_spec<T>& s, const resolved_state<T>& f) noexcept {
    return pooled(f).var / (T(1) - s.p_hidden);
}

/// Branch targets solved on the resolved state, during the forward (apply_dslm with
/// dslm_forward::resolved, schemes.hpp): before each block, the sigmas of that layer in
/// `sigmas` (a copy of the spec's, which the forward reads instead) are set so that the
/// branch adds `target` to the stream's pooled variance, for the state the block really
/// sees. Attention: v = o in closed form from one evaluation at v = o = 1, since the
/// branch's covariance is proportional to sigma_v^2 sigma_o^2 (resolved_attention's scale,
/// then scaled()). FFN: its branch input has one variance at every position
/// (resolved_ffn), so its variances are predict's FFN chain at the pooled stream x before
/// the block, and `ffn(w, x)` sets the FFN sigmas from that (schemes.hpp's root finder).
/// `achieved` receives each branch's resulting variance, 2 per layer (attention, FFN).
template <class T>
struct resolved_tuning {
    std::vector<layer_sigmas<T>> sigmas;
    T target{1};
    std::function<void(layer_sigmas<T>&, const signal<T>&)> ffn;
    std::vector<T> achieved{};
};

/// The forward pass: the pooled points, and with `blocks` (2 per layer: attention, FFN)
/// and `final_ln` what the backward needs; with `tune`, the branch targets are solved on
/// the way (resolved_tuning).
template <class T>
std::vector<signal<T>> resolved_forward(const transformer_spec<T>& s, std::vector<resolved_block<T>>* blocks,
                                        resolved_state<T>* final_ln, resolved_tuning<T>* tune = nullptr) {
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
    if (blocks) blocks->assign(std::size_t(2 * s.layers), resolved_block<T>{});
    std::vector<T> p2;
    const bool pre = s.norm == norm_placement::pre;
    // The anisotropy of the stream's token-specific part, for the backward's query/key
    // terms (anisotropy.hpp); tracked from the pooled moments, as in predict.
    T aniso = T(1);
    const T l2 = s.lambda * s.lambda, b2 = s.beta * s.beta;
    const auto skip_t = [&] { return l2 * token_specific_variance(pooled(x)); };
    const auto branch_t = [&](const resolved_state<T>& f) {  // after the hidden dropout
        const signal<T> pf = pooled(f);
        return b2 * (pf.var / (T(1) - s.p_hidden) - pf.var * pf.corr);
    };
    for (int l = 0; l < s.layers; ++l) {
        layer_sigmas<T>* tw = tune ? &tune->sigmas[std::size_t(l)] : nullptr;
        if (tw) tw->v = tw->o = T(1);
        const layer_sigmas<T>& w = tw ? *tw : s.sigmas[std::size_t(l)];
        const multi_head_attention<T> m{s.d_model, s.heads, L, w.q, w.k, w.v, w.o,
                                        s.p_attention, s.arch == architecture::decoder, form::best};
        resolved_block<T>* ba = blocks ? &(*blocks)[std::size_t(2 * l)] : nullptr;
        resolved_block<T>* bf = blocks ? &(*blocks)[std::size_t(2 * l + 1)] : nullptr;
        resolved_state<T> u = pre ? resolved_layer_norm(s.d_model, nu, x, ba ? &ba->ln : nullptr) : x;
        resolved_state<T> mid = resolved_attention(m, u, p2, ba ? &ba->sc : nullptr, ba ? &ba->pg : nullptr);
        if (tw) {  // v = o = c with c^4 = target / (the branch's variance at c = 1); mid scales with c^2
            using std::sqrt;
            const T c2 = sqrt(tune->target / resolved_branch_var(s, scaled(T(s.d_model), mid)));
            tw->v = tw->o = sqrt(c2);
            mid = scaled(c2, std::move(mid));
        }
        const resolved_state<T> fa = scaled(T(s.d_model) * w.o * w.o, mid);
        if (tune) tune->achieved.push_back(resolved_branch_var(s, fa));
        if (ba) {
            ba->u = std::move(u);
            ba->mid = std::move(mid);
            ba->p2 = p2;
            ba->aniso = aniso;
            const T ts = skip_t();
            aniso = anisotropy_after_attention(aniso, ts, ts + branch_t(fa));
        }
        resolved_close(s, nu, x, fa, ba ? &ba->ln : nullptr);
        out.push_back(pooled(x));
        if (tw) tune->ffn(*tw, pooled(x));
        u = pre ? resolved_layer_norm(s.d_model, nu, x, bf ? &bf->ln : nullptr) : x;
        const resolved_state<T> ff = resolved_ffn(s, w, u, bf ? &bf->ffn : nullptr);
        if (tune) tune->achieved.push_back(resolved_branch_var(s, ff));
        if (bf) {
            const signal<T> slopes = pooled(bf->ffn.slope);
            const T linear = b2 * slopes.var * slopes.corr * T(s.d_model) * w.ffn1 * w.ffn1 * T(s.d_ff) * w.ffn2 *
                             w.ffn2 * token_specific_variance(pooled(u));
            const T ts = skip_t();
            bf->aniso = aniso;
            aniso = anisotropy_after_ffn(aniso, ts, linear, ts + branch_t(ff), s.d_model, s.d_ff);
            bf->u = std::move(u);
        }
        resolved_close(s, nu, x, ff, bf ? &bf->ln : nullptr);
        out.push_back(pooled(x));
    }
    if (s.final_norm) out.push_back(pooled(resolved_layer_norm(s.d_model, nu, x, final_ln)));
    return out;
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
    validate(s);
    return detail::resolved_forward(s, static_cast<std::vector<detail::resolved_block<T>>*>(nullptr),
                                    static_cast<detail::resolved_state<T>*>(nullptr));
}

}  // namespace sigprop
