#pragma once
// predict(spec): the closed-form moments of a whole randomly initialised transformer,
// composed from the components' formulas (form::best everywhere; a Post-LN block's
// LayerNorm backward takes the stack's form of post_ln.hpp). Derivations and assumptions:
// docs/theory/models.md.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "sigprop/components/dropout.hpp"
#include "sigprop/components/embedding.hpp"
#include "sigprop/components/gelu.hpp"
#include "sigprop/components/layer_norm.hpp"
#include "sigprop/components/linear.hpp"
#include "sigprop/components/multi_head_attention.hpp"
#include "sigprop/components/relu.hpp"
#include "sigprop/compose/residual.hpp"
#include "sigprop/core/errors.hpp"
#include "sigprop/core/moments.hpp"
#include "sigprop/detail/attention_moments.hpp"
#include "sigprop/detail/chi_moments.hpp"
#include "sigprop/detail/hypergeometric.hpp"
#include "sigprop/models/anisotropy.hpp"
#include "sigprop/models/causal_rows.hpp"
#include "sigprop/models/post_ln.hpp"
#include "sigprop/models/spec.hpp"
#include "sigprop/models/trajectory.hpp"

namespace sigprop {

namespace detail {

inline constexpr const char* spec_name = "transformer_spec";

/// Number of entries spec.sigmas must have.
template <class T>
int expected_sigmas(const transformer_spec<T>& s) noexcept {
    return s.arch == architecture::encoder_decoder ? 2 * s.layers : s.layers;
}

/// Token count of the encoder stack.
template <class T>
int encoder_len(const transformer_spec<T>& s) noexcept {
    return (s.arch == architecture::encoder_decoder && s.source_len > 0) ? s.source_len : s.seq_len;
}

// ---------------------------------------------------------------------------------------
// Small noexcept helpers.

/// A mean folded into the variance: (mu, s2, r) -> (0, s2 + mu^2, (r s2 + mu^2)/(s2 + mu^2)).
/// Used before attention, whose formulas need a zero-mean input. Approximation: a constant
/// mean vector mu (1, ..., 1) seen through random projections behaves like a component
/// shared by all tokens, which is what the correlation describes; the difference (a fixed
/// rather than a chi-square-distributed squared length) is O(1/d). Exact when mu = 0.
template <class T>
signal<T> fold_mean(const signal<T>& x) noexcept {
    if (x.mean == T(0)) return x;
    return forward_impl(linear<T>{1, 1, T(1)}, x);  // the same algebra, overflow-safe
}

// Shortcuts for the steps on the dependency chain of every layer. The components' forms
// are overflow-safe: (w sqrt(v))^2 keeps 0 * inf = 0 and w^2 from overflowing early, and
// the linear layer's correlation is scaled by its larger term. That costs a square root
// or extra divisions per step, several times per layer. While every intermediate is a
// normal finite number the plain products agree with those forms to a few ulps, so they
// are taken there; elsewhere the overflow-safe forms are, with their 0 * inf = 0 and
// +inf (tests/models/predict_fast_paths.test.cpp).

/// x is a positive normal finite number.
template <class T>
bool normal_positive(const T& x) noexcept {
    return x >= std::numeric_limits<T>::min() && x <= std::numeric_limits<T>::max();
}

/// w^2 v for a weight w and a variance v; the overflow-safe form is (w sqrt(v))^2.
template <class T>
T weighted_var(const T& w, const T& v) noexcept {
    using std::sqrt;
    const T w2 = w * w, p = w2 * v;
    if (normal_positive(w2) && normal_positive(p)) return p;
    const T s = times0(w, sqrt(v));
    return s * s;
}

/// a * g: the gradient of a * (something), with 0 * inf = 0.
template <class T>
gradient<T> scale_gradient(const T& a, const gradient<T>& g) noexcept {
    return {weighted_var(a, g.var), g.corr};
}

/// forward_impl(linear{d_in, d_out, sigma}): variance d_in sigma^2 (s2 + mu^2), correlation
/// (r s2 + mu^2) / (s2 + mu^2), the latter with one division instead of four.
template <class T>
signal<T> linear_forward(int d_in, const T& sigma, const signal<T>& x) noexcept {
    const T lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
    const T mu2 = x.mean * x.mean, m2 = x.var + mu2;
    if (x.var >= lo && m2 <= hi && (x.mean == T(0) || mu2 >= lo)) {
        const T corr = x.mean == T(0) ? x.corr : (x.corr * x.var + mu2) / m2;
        return {T(0), T(d_in) * weighted_var(sigma, m2), corr};
    }
    return forward_impl(linear<T>{d_in, 1, sigma}, x);
}

/// backward_impl(linear{d_in, d_out, sigma}): variance d_out sigma^2 s2_g, the correlation
/// kept. Where sigma^2 s2_g underflows the two differ by the subnormal rounding of that
/// product (d_out units of denorm_min at most).
template <class T>
gradient<T> linear_backward(int d_out, const T& sigma, const gradient<T>& g) noexcept {
    return {T(d_out) * weighted_var(sigma, g.var), g.corr};
}

/// forward_impl(dropout{p}) of a zero-mean input (every branch ends with a random
/// projection): variance s2/(1-p), correlation r (1-p), the component's values exactly,
/// without its square roots.
template <class T>
signal<T> hidden_dropout(const T& p, const signal<T>& f) noexcept {
    if (f.mean != T(0) || !(f.var > T(0))) return forward_impl(dropout<T>{p}, f);
    const T keep = T(1) - p;
    return {T(0), f.var / keep, f.corr * keep};
}

/// One LayerNorm application evaluated once for both passes. The forward token
/// correlation and the backward correlation factor of layer_norm.hpp (form::best) need the
/// same 2F1(1/2, 1/2; d/2 + 1/2; r^2) and the same chi ratio nu_{d-1}; a model evaluates
/// them once per LayerNorm instead of twice, and nu once per model (it depends on d only).
/// The expressions are those of layer_norm_token_corr / layer_norm_grad_corr_factor
/// (tested equal). `series` is the 2F1 of the model's width as polynomials in r^2
/// (half_half_2f1_table, no division per evaluation); an empty table evaluates
/// half_half_2f1 directly (d < 41).
template <class T>
struct ln_eval {
    signal<T> y;        ///< forward output moments
    T grad_corr{1};     ///< backward: corr_g / r_g
};

template <class T>
ln_eval<T> layer_norm_eval(int d, const T& nu, const half_half_2f1_table<T>& series, const signal<T>& x) noexcept {
    ln_eval<T> e;
    e.y = {T(0), T(1), x.corr};
    const T r = x.corr;
    if (r == T(1) || r == T(-1)) return e;
    const long long n = d - 1;
    const auto f = series.terms > 0 ? half_half_2f1(series, r * r) : half_half_2f1(n + 2, r * r, (T(1) - r) * (T(1) + r));
    const T k = nu * f.value;
    e.y.corr = k < T(1) ? r * k : r;
    const T nn = T(n);
    const T kg = (nn - T(2)) / (nn - T(1)) * nu * (f.value + nn * f.step_down);
    e.grad_corr = kg > T(1) ? T(1) : kg;
    return e;
}

/// LayerNorm backward with the degenerate inputs made explicit: no incoming gradient gives
/// none; a vanished (underflowed) input variance gives +infinity, never 0/0; and when both
/// the input variance and the gradient have overflowed (inf/inf, whose true ratio is lost)
/// the answer is +infinity: the configuration has already exploded.
template <class T>
gradient<T> ln_backward(int d, const signal<T>& x, const gradient<T>& g) noexcept {
    const T inf = std::numeric_limits<T>::infinity();
    if (g.var == T(0)) return {T(0), g.corr};
    if (!(x.var > T(0)) || (g.var == inf && x.var == inf)) return {inf, g.corr};
    return backward_impl(layer_norm<T>{d}, x, g);
}

/// The same with the correlation factor of a cached layer_norm_eval (d >= 4).
template <class T>
gradient<T> ln_backward(int d, const signal<T>& x, const ln_eval<T>& e, const gradient<T>& g) noexcept {
    const T inf = std::numeric_limits<T>::infinity();
    if (g.var == T(0)) return {T(0), g.corr};
    if (!(x.var > T(0)) || (g.var == inf && x.var == inf)) return {inf, g.corr};
    return {g.var / x.var * (T(d - 2) / T(d - 3)), g.corr * e.grad_corr};
}

/// y = lambda x + beta f with f uncorrelated with x (REFERENCE.md section 3).
template <class T>
signal<T> residual_sum(const T& lambda, const signal<T>& x, const T& beta, const signal<T>& f) noexcept {
    signal<T> y;
    y.mean = weighted_sum(lambda, x.mean, beta, f.mean);
    add_weighted(lambda, x.var, x.corr, beta, f.var, f.corr, y.var, y.corr);
    return y;
}

/// The sum of two uncorrelated gradient contributions a^2 g1 + g2.
template <class T>
gradient<T> gradient_sum(const T& a, const gradient<T>& g1, const gradient<T>& g2) noexcept {
    gradient<T> out;
    add_weighted(a, g1.var, g1.corr, T(1), g2.var, g2.corr, out.var, out.corr);
    return out;
}

// Expected squared Frobenius norm of dW = X^T G for y = x W (d_in -> d_out) over one
// sequence of L tokens (our derivation, docs/theory/models.md). One entry is
// sum_i x_i g_i (x: one input unit, g: one output unit); with x and g independent at
// initialisation (an assumption: G depends on the weights downstream and on X only through
// other random projections),
//   E[(sum_i x_i g_i)^2] = sum_{i,j} E[x_i x_j] E[g_i g_j]
//                        = L (s2 + mu^2) s2_g + L (L - 1) (r s2 + mu^2) r_g s2_g,
// and all d_in d_out entries have that law. The bracket is >= 0 for any valid moments; it
// is clamped against rounding, and a zero factor wins over an overflowed one.
template <class T>
T weight_grad_norm(int d_in, int d_out, int L, const signal<T>& x, const gradient<T>& g) noexcept {
    if (g.var == T(0)) return T(0);
    const T mu2 = x.mean * x.mean;
    const T m2 = x.var + mu2;
    if (!is_finite(m2)) return std::numeric_limits<T>::infinity();
    const T c2 = x.corr * x.var + mu2;
    T bracket = m2 + T(L - 1) * g.corr * c2;
    if (!(bracket > T(0))) return T(0);
    return T(d_in) * T(d_out) * T(L) * bracket * g.var;
}

// ---------------------------------------------------------------------------------------
// Attention internals that the weight gradients need.

/// Gradient moments at the outputs of the Q, K and V projections (per unit, one head).
/// `qk` is what the query and key weight-gradient norms use (models.md section 2): with
/// nearly uniform rows they share one sum, E|dWq|^2 / sigma_k^2 = E|dWk|^2 / sigma_q^2,
/// which is the Q path per unit of sigma_k^2 with its unit coupling times the stream's
/// anisotropy. q, k, v are the component's (the input gradient is their sum).
template <class T>
struct qkv_gradients {
    gradient<T> q, k, v, qk;
};

// Self-attention, bidirectional or causal. The split of the best-form backward of
// attention.hpp / multi_head_attention.hpp into its three paths (V, Q, K), in units of
// U = s2_gh d_head sigma_v^2 (s2_gh: gradient at the head's output):
//   V  r_g (col2 + k P2) + (1 - r_g) P2 / (1-p)         cov r_g (1 - (col2-1)/(L-1)) + (1-r_g)(1-P2)/(L-1)
//   Q  S (1-r) (drop + coupling)                        cov S r_g (1-r) ((1-r) h + coupling)
//   K  S (drop + r_g r (1-r)(col2 - P2) + r_g (1-r) tilt)   cov -S r_g (1-r) (r + tilt) h
// (h = 1/L bidirectional, H_L/L causal; the covariance split follows the derivation:
// the (1-r) h part comes from the query path, the -r h part from the key path). The path
// through Q reaches X as dQ Wq^T, so the moments at Q itself are the Q bracket times
// U / (d_head sigma_q^2) = s2_gh sigma_v^2 (d s2 sigma_k)^2; likewise for K with sigma_q,
// and dV has s2_gh times the V bracket. Summing the three over paths and heads gives back
// exactly backward_impl(multi_head_attention) (tested).
/// The softmax statistics of one self-attention block, evaluated once per block and shared
/// by its forward, its backward and the Q/K/V split. The causal ones cost O(L), or O(1)
/// apart from the rows where a clamp binds with the model's table of inverse-power suffix
/// sums for c.L (causal_rows.hpp).
template <class T>
struct self_scores {
    attention_scores<T> sc{};
    causal_scores<T> cs{};  ///< causal blocks only
};

template <class T>
self_scores<T> self_statistics(const multi_head_attention<T>& c, const signal<T>& u,
                               const inverse_power_tails<T>* tails = nullptr) noexcept {
    self_scores<T> s;
    s.sc = score_statistics(c.d_model, c.L, u.var, u.corr, c.sigma_q, c.sigma_k);
    if (c.causal)
        s.cs = tails ? causal_statistics(c.d_model, u.corr, c.p, s.sc, *tails)
                     : causal_statistics(c.d_model, c.L, u.corr, c.p, s.sc);
    return s;
}

/// Makes a split a + b of a path variance nonnegative in both parts, keeping a + b: a
/// negative b is moved into a, and a negative result clamped at 0 (rounding).
template <class T>
void split_nonnegative(T& a, T& b) noexcept {
    if (b < T(0)) {
        a += b;
        b = T(0);
    }
    if (a < T(0)) a = T(0);
}

/// The V path's gradient variance s2_g vb. Its bracket r_g E c^2 + (1 - r_g) E sum P^2 (a
/// column of P weighting L correlated gradients) is >= 0 for every realisable gradient
/// correlation: L tokens cannot be more anti-correlated than r_g = -1/(L-1), and
/// Cauchy-Schwarz gives c_j^2 <= L sum_i P_ij^2. The spec accepts any r_g in [-1, 1], and
/// below -1/(L-1) the bracket can go negative; a variance cannot, so it is clamped at 0,
/// as the component clamps its total bracket (attention_gradient).
template <class T>
T v_path_moment(const T& g_var, const T& vb) noexcept {
    return vb > T(0) ? mul0(g_var, vb) : T(0);
}

// `aniso` is the anisotropy of u's token-specific part (anisotropy.hpp). It scales the unit
// coupling term of `qk` (E tr(S^2) of the sequence's token-specific scatter S beyond its
// Wishart part; 1 for an isotropic stream). The input gradient's Q path keeps the
// component's isotropic term, so that predict stays the composition of the components
// (models.md section 2 has what the anisotropy does there).
template <class T>
qkv_gradients<T> self_attention_gradients(const multi_head_attention<T>& c, const signal<T>& u,
                                          const gradient<T>& gh, const self_scores<T>& st,
                                          const T& aniso = T(1)) noexcept {
    const T r = u.corr, rg = gh.corr;
    const T d = T(c.d_model), n = T(c.L);
    const T inv = T(1) / (T(1) - c.p), k = c.p * inv;
    const backward_softmax<T> sm =
        c.causal ? causal_softmax(c.d_model, c.d_model / c.heads, c.L, r, st.sc, st.cs)
                 : bidirectional_softmax(c.d_model, c.d_model / c.heads, c.L, r, st.sc);
    const T drop = sm.p2q * (inv - r);
    const T vb = v_path_var(rg, k, inv, sm);
    const T vc = v_path_cov(rg, n, sm);
    T qb = (T(1) - r) * (drop + sm.coupling);
    const T qc = rg * (T(1) - r) * ((T(1) - r) * sm.h + sm.coupling);
    const T kt = rg * (T(1) - r) * sm.tilt;
    T kb = drop + rg * r * (T(1) - r) * (sm.col2 - sm.p2) + kt;
    // The component only ever uses qb + kb, which is >= 0; the split alone can make kb < 0
    // when r_g r < 0 (a gradient anti-correlated with a correlated stream). A variance
    // cannot be negative: the deficit is moved to the Q path, which keeps the sum.
    split_nonnegative(qb, kb);
    const T kc = -(rg * (T(1) - r) * r + kt) * sm.h;
    const T extra = (T(1) - r) * (aniso - T(1)) * sm.coupling;  // the anisotropic excess
    const T qkb = qb + extra, qkc = qc + mul0(rg, extra);
    const T sq_scale = mul0(mul0(d, u.var), c.sigma_k);  // d s2 sigma_k
    const T sk_scale = mul0(mul0(d, u.var), c.sigma_q);
    const T ds2 = mul0(d, u.var);
    const T gv = mul0(gh.var, c.sigma_v * c.sigma_v);
    qkv_gradients<T> out;
    out.v = {v_path_moment(gh.var, vb), attention_corr(vc, vb, rg)};
    out.q = {mul0(mul0(gv, sq_scale * sq_scale), qb), attention_corr(qc, qb, rg)};
    out.qk = {mul0(mul0(gv, ds2 * ds2), qkb), attention_corr(qkc, qkb, rg)};
    out.k = {mul0(mul0(gv, sk_scale * sk_scale), kb), attention_corr(kc, kb, T(0))};
    return out;
}

template <class T>
qkv_gradients<T> self_attention_gradients(const multi_head_attention<T>& c, const signal<T>& u,
                                          const gradient<T>& gh) noexcept {
    return self_attention_gradients(c, u, gh, self_statistics(c, u));
}

/// The gradient at the attention input from the three paths: d_head sigma^2 per head back
/// through each projection, summed over the heads (d sigma^2 in all); the three paths are
/// uncorrelated (the component's backward drops their cross terms too), so the variances
/// and covariances add. Equal to backward_impl(multi_head_attention) where that is finite
/// (tested); an overflowed path dominates.
template <class T>
gradient<T> attention_input_gradient(const multi_head_attention<T>& c, const qkv_gradients<T>& at) noexcept {
    const T d = T(c.d_model);
    const T v = mul0(mul0(d, c.sigma_v * c.sigma_v), at.v.var);
    const T q = mul0(mul0(d, c.sigma_q * c.sigma_q), at.q.var);
    const T k = mul0(mul0(d, c.sigma_k * c.sigma_k), at.k.var);
    gradient<T> a, out;
    add_weighted(T(1), v, at.v.corr, T(1), q, at.q.corr, a.var, a.corr);
    add_weighted(T(1), a.var, a.corr, T(1), k, at.k.corr, out.var, out.corr);
    return out;
}

// ---------------------------------------------------------------------------------------
// Cross-attention (encoder-decoder): queries from the decoder stream u (L_d tokens), keys
// and values from the encoder output e (L_s tokens), bidirectional over the keys. Our
// derivation (docs/theory/models.md), the single-head best form of attention.hpp with the
// roles separated. Assumptions: u and e are independent (different token sequences, no
// shared weights at initialisation) and zero-mean (means are folded first); the rest as
// for self-attention (near-Gaussian scores, e^{2 sig} << L_s). Score statistics:
//   S = (d sigma_q sigma_k)^2 s2_u s2_e, sig = (1 - r_e) S (what the softmax sees),
//   rho = r_u (1 - r_e) S (two queries share the keys; the query-side moments enter only
//   here and in S), P2 = E sum_j P_ij^2 over the L_s keys.
template <class T>
struct cross_scores {
    T S, sig, rho, e_sig, e_rho, p2;
};

template <class T>
cross_scores<T> cross_statistics(int d, int Ls, const signal<T>& u, const signal<T>& e, const T& sq,
                                 const T& sk) noexcept {
    using std::exp;
    using std::expm1;
    using std::sqrt;
    cross_scores<T> s{};
    const T n = T(Ls);
    const T amp = mul0(mul0(T(d), sqrt(u.var) * sqrt(e.var)), mul0(sq, sk));
    s.S = amp * amp;
    s.sig = mul0(T(1) - e.corr, s.S);
    s.rho = mul0(u.corr * (T(1) - e.corr), s.S);
    const T em1 = expm1(s.sig);
    s.e_sig = em1 + T(1);
    s.p2 = softmax_sum_p2(n, s.e_sig, em1);
    s.e_rho = min_of(n, exp(s.rho));  // E sum_j P_ij P_i'j <= 1 caps e^rho / L_s at 1
    return s;
}

// Forward of one cross head: the bracket of attention.hpp's best form with the value
// statistics of e, the scores of cross_statistics and L -> L_s:
//   var = d sigma_v^2 s2_e [r_e (1 + k P2) + (1 - r_e) W / d],
//   W = (d-1) P2 + sig (1 - 2 e^sig/L_s)_+ + e^sig (1 + sig)/L_s + k P2 (d + 4 sig),
//   cov = d sigma_v^2 s2_e [r_e + (1 - r_e) (rho (1 - 2 e^sig/L_s)_+ + e^rho (d + rho)/L_s) / d].
template <class T>
signal<T> cross_head_forward(int d_model, int Ls, const T& p, const T& sv, const signal<T>& e,
                             const cross_scores<T>& sc) noexcept {
    using std::sqrt;
    const T d = T(d_model), n = T(Ls), re = e.corr;
    const T inv = T(1) / (T(1) - p), k = p * inv;
    const T tilt = max_of(T(0), T(1) - T(2) * sc.e_sig / n);
    const T vb = best_var_bracket(d, n, k, re, sc.p2, sc.sig, sc.e_sig);
    const T cb = best_cov_bracket(d, n, re, sc.rho, sc.e_rho, tilt);
    const T a = mul0(sv, sqrt(e.var));  // sigma_v = 0 silences an overflowed encoder output
    // The convexity bound of attention.hpp (best_var_cap) holds for any query stream: a
    // row of L_s keys gives at most L_s/(1 - p) in these units.
    return attention_signal(d * a * a, vb, cb, best_var_cap(n, inv));
}

/// Cross-attention backward: gradients at Q, K, V (per unit, one head) and at the two
/// inputs (all heads: the decoder stream via Q, the encoder output via K and V).
template <class T>
struct cross_gradients {
    qkv_gradients<T> at;
    gradient<T> decoder, encoder;
};

// Our derivation (docs/theory/models.md); units U = s2_gh d_head sigma_v^2, a = L_d/L_s:
//   decoder (Q path)  S_Q (1-r_e) [P2 (1/(1-p) - r_e) + (1-r_e)(L_s-1)/(L_s d)],
//                     cov S_Q r_g (1-r_e)^2 (1/L_s + (L_s-1)/(L_s d)),  S_Q = (d s2_e sigma_q sigma_k)^2
//   encoder, V path   a [r_g (L_d-1) e^rho/L_s + P2/(1-p)],
//                     cov L_d [(1-P2) + r_g (L_d-1)(1 - e^rho/L_s)] / (L_s (L_s-1))
//   encoder, K path   a S [P2 (1/(1-p) - r_e) + r_g (1-r_e)(L_d-1)/L_s (r_u e^rho + tilt)], cov 0
// (e^rho times the keys' norm spread col, tilt: column_spread of attention_moments.hpp)
// (the K path's covariance between keys is O(1/L_s) of its variance and dropped). Note the
// Q path scales with s2_e^2 (the score's derivative in the query is the key), the K path
// with s2_u s2_e. With u = e and L_d = L_s the three variances add up to the
// self-attention backward of attention.hpp (tested); only the K path's small covariance
// -S r_g r (1-r)/L is not carried over.
template <class T>
cross_gradients<T> cross_backward(int d_model, int heads, int Ld, int Ls, const T& p, const T& sq,
                                  const T& sk, const T& sv, const signal<T>& u, const signal<T>& e,
                                  const cross_scores<T>& sc, const gradient<T>& gh, const T& e_aniso = T(1)) noexcept {
    const T d = T(d_model), nd = T(Ld), ns = T(Ls), re = e.corr, ru = u.corr, rg = gh.corr;
    const T inv = T(1) / (T(1) - p);
    const T a = nd / ns;
    const T drop = sc.p2 * (inv - re);
    const T coupling = (T(1) - re) * (ns - T(1)) / (ns * d);
    T qb = (T(1) - re) * (drop + coupling);
    const T qc = rg * (T(1) - re) * (T(1) - re) * (T(1) / ns + (ns - T(1)) / (ns * d));
    // The keys' norm spread (column_spread, attention_moments.hpp): the queries' scatter is
    // the decoder's, the keys' the encoder's; pairs = (L_d - 1)/L_s as in the brackets.
    const key_spread<T> ks = column_spread(d_model, d_model / heads, T(1) / ns, ru, re, sc.S, sc.e_sig);
    const T pairs = (nd - T(1)) / ns;
    const T e_col = min_of(ns, mul0(sc.e_rho, ks.col));
    const T tilt = min_of((T(1) - ru) * (pairs * e_col + sc.p2), mul0(pairs, ks.tilt));
    const T vb = a * (rg * pairs * e_col + sc.p2 * inv);
    const T vc = nd * ((T(1) - sc.p2) + rg * (nd - T(1)) * (T(1) - e_col / ns)) / (ns * (ns - T(1)));
    T kb = a * (drop + rg * (T(1) - re) * (ru * pairs * e_col + tilt));
    split_nonnegative(qb, kb);  // as in self-attention: the K bracket alone can go below 0
    const T gv = mul0(gh.var, sv * sv);
    const T q_scale = mul0(mul0(d, e.var), sk);  // S_Q / sigma_q^2 = (d s2_e sigma_k)^2
    using std::sqrt;
    const T k_scale = mul0(mul0(d, sqrt(u.var) * sqrt(e.var)), sq);  // S / sigma_k^2
    // The query/key weight norms' shared sum (self_attention_gradients), with the encoder
    // output's anisotropy: the scatter is the keys' (models.md section 2).
    const T extra = (T(1) - re) * (e_aniso - T(1)) * coupling;
    const T qkb = qb + extra, qkc = qc + mul0(rg, extra);
    const T ds2e = mul0(d, e.var);
    cross_gradients<T> out;
    out.at.q = {mul0(mul0(gv, q_scale * q_scale), qb), attention_corr(qc, qb, rg)};
    out.at.qk = {mul0(mul0(gv, ds2e * ds2e), qkb), attention_corr(qkc, qkb, rg)};
    // Every row of the attention weights' gradient sums to 0, so the K gradients of the L_s
    // keys sum to 0 in every sequence: their token correlation is exactly -1/(L_s - 1).
    out.at.k = {mul0(mul0(gv, k_scale * k_scale), kb), Ls > 1 ? T(-1) / (ns - T(1)) : T(0)};
    out.at.v = {v_path_moment(gh.var, vb), attention_corr(vc, vb, rg)};
    // Back through the projections, summed over heads (uncorrelated, as in multi-head
    // self-attention): d_head sigma^2 per head, times heads = d sigma^2.
    out.decoder = {mul0(mul0(d, sq * sq), out.at.q.var), out.at.q.corr};
    const T ev = mul0(mul0(d, sv * sv), out.at.v.var);
    const T ek = mul0(mul0(d, sk * sk), out.at.k.var);
    add_weighted(T(1), ev, out.at.v.corr, T(1), ek, out.at.k.corr, out.encoder.var, out.encoder.corr);
    return out;
}

// ---------------------------------------------------------------------------------------
// The layer recurrence.

/// The FFN's activation evaluated once for both passes. GeLU's backward factors (the slope
/// products of gelu.hpp) depend on the input moments only, and E[gelu'^2] shares
/// gelu_arccos(1, z) with the forward variance, so both are formed here: one asin and
/// square root fewer per layer, and work off the backward's dependency chain. Same
/// expressions as forward_impl / backward_impl (tested equal).
template <class T>
struct act_eval {
    signal<T> y;
    gaussian_work_t<T> same{1}, cross{1};  ///< GeLU: E[gelu'(x)^2], E[gelu'(a) gelu'(b)]
};

template <class T>
act_eval<T> activation_eval(activation a, const signal<T>& x) noexcept {
    using W = gaussian_work_t<T>;
    act_eval<T> e;
    if (a == activation::relu) {
        e.y = forward_impl(relu<T>{}, x);
        return e;
    }
    const gelu_scale<W> z = gelu_scale_of(W(x.var));
    const W arccos_a = gelu_arccos(W(1), z), r = W(x.corr);
    e.y = gelu_forward(z, arccos_a, x);
    e.same = gelu_slope_product(z, W(1), arccos_a);
    e.cross = gelu_slope_product(z, r, gelu_arccos(r, z));
    return e;
}

template <class T>
gradient<T> activation_backward(activation a, const signal<T>& x, const act_eval<T>& e, const gradient<T>& g) noexcept {
    // An overflowed input takes GeLU's ReLU limit, as backward_impl(gelu) does (its slope
    // products are NaN there).
    const bool relu_like = a == activation::relu || !(x.var <= std::numeric_limits<T>::max());
    return relu_like ? backward_impl(relu<T>{}, x, g) : gelu_backward(e.same, e.cross, g);
}

/// Forward moments kept for the backward pass of one block.
template <class T>
struct block_cache {
    signal<T> in;     ///< stream entering the block
    signal<T> u;      ///< branch input (LN output for Pre-LN; the mean-folded stream for Post-LN attention)
    signal<T> mid;    ///< attention: concatenated head outputs (input of Wo); FFN: first linear output
    act_eval<T> act;  ///< FFN: the activation (its output is the second linear's input)
    signal<T> z;      ///< lambda x + beta F(x), the LayerNorm input in Post-LN
    T skip{0};        ///< lambda^2 var_x, the skip's share of z.var (post_ln.hpp)
    ln_eval<T> ln;    ///< the block's LayerNorm (of `in` for Pre-LN, of `z` for Post-LN)
    self_scores<T> scores;  ///< self-attention blocks: the softmax statistics
    T aniso{1};             ///< anisotropy of the block input's token-specific part (anisotropy.hpp)
    cross_scores<T> cross{};  ///< cross-attention blocks: the score statistics
};

template <class T>
struct layer_cache {
    block_cache<T> attn, cross, ffn;
};

/// The per-layer caches of predict(), one vector per stack (0: the encoder or the only
/// stack, 1: an encoder-decoder's decoder), kept per thread and scalar type from one call
/// to the next and only ever grown. Allocated on every call, an encoder-decoder's caches
/// (about 0.8 MB per 1000 layers and stack) came back from the system as fresh pages that
/// fault on first touch: 1000 + 1000 layers took 2.0 ms per call, 1.3 ms with the reuse
/// (an encoder alone did not change measurably). No reset is needed: the forward pass
/// writes every field the backward pass reads before it reads it. Cost: the largest
/// caches a thread has needed stay allocated until it ends, so only models of up to
/// reused_cache_layers layers use them (at most about 13 MB per stack and thread); deeper
/// ones get `fresh`, released when predict returns.
inline constexpr int reused_cache_layers = 1 << 14;

template <class T>
std::vector<layer_cache<T>>& reused_caches(std::size_t stack, int layers, std::vector<layer_cache<T>>& fresh) {
    if (layers > reused_cache_layers) {
        fresh.resize(std::size_t(layers));
        return fresh;
    }
    thread_local std::vector<layer_cache<T>> caches[2];
    std::vector<layer_cache<T>>& c = caches[stack];
    if (c.size() < std::size_t(layers)) c.resize(std::size_t(layers));
    return c;
}

/// One stack's settings.
template <class T>
struct stack_setup {
    stack_kind kind;
    int sigma_offset;
    int L;
    bool causal;
    bool cross;
    T lambda, beta;
    T nu;  ///< chi_mean_sq_ratio(d_model - 1), shared by every LayerNorm
    half_half_2f1_table<T> ln_series{};  ///< the LayerNorms' 2F1 (half_half_2f1_table_of(d_model + 1))
    const inverse_power_tails<T>* causal_tails{nullptr};  ///< causal stacks: the suffix sums for L
    T cross_aniso{1};  ///< anisotropy of the encoder output (the cross-attention keys), anisotropy.hpp
};

template <class T>
multi_head_attention<T> self_attention_of(const transformer_spec<T>& s, const layer_sigmas<T>& w,
                                          const stack_setup<T>& st) noexcept {
    return {s.d_model, s.heads, st.L, w.q, w.k, w.v, w.o, s.p_attention, st.causal, form::best};
}

template <class T>
signal<T> activation_forward(activation a, const signal<T>& x) noexcept {
    return a == activation::relu ? forward_impl(relu<T>{}, x) : forward_impl(gelu<T>{}, x);
}

template <class T>
gradient<T> activation_backward(activation a, const signal<T>& x, const gradient<T>& g) noexcept {
    return a == activation::relu ? backward_impl(relu<T>{}, x, g) : backward_impl(gelu<T>{}, x, g);
}

/// The end of a block: hidden dropout on the branch output f, the residual sum, and for
/// Post-LN the LayerNorm (Pre-LN and no-LN blocks end at the sum). Returns the new stream.
template <class T>
signal<T> close_block(const transformer_spec<T>& s, const stack_setup<T>& st, block_cache<T>& b,
                      const signal<T>& f) noexcept {
    const signal<T> fd = hidden_dropout(s.p_hidden, f);
    b.z = residual_sum(st.lambda, b.in, st.beta, fd);
    if (s.norm != norm_placement::post) return b.z;
    b.skip = mul0(st.lambda * st.lambda, b.in.var);
    b.ln = layer_norm_eval(s.d_model, st.nu, st.ln_series, b.z);
    return b.ln.y;
}

template <class T>
signal<T> attention_block_forward(const transformer_spec<T>& s, const stack_setup<T>& st,
                                  const layer_sigmas<T>& w, block_cache<T>& b, const signal<T>& x) noexcept {
    b.in = x;
    b.u = s.norm == norm_placement::pre ? (b.ln = layer_norm_eval(s.d_model, st.nu, st.ln_series, x)).y : fold_mean(x);
    const auto m = self_attention_of(s, w, st);
    const auto h = head_of(m);
    b.scores = self_statistics(m, b.u, st.causal_tails);
    b.mid = m.causal ? causal_head_forward(h, b.u, b.scores.sc, b.scores.cs) : forward_impl(h, b.u, b.scores.sc);
    const signal<T> f = linear_forward(s.d_model, w.o, b.mid);
    return close_block(s, st, b, f);
}

template <class T>
signal<T> cross_block_forward(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                              block_cache<T>& b, const signal<T>& x, const signal<T>& enc) noexcept {
    b.in = x;
    b.u = s.norm == norm_placement::pre ? (b.ln = layer_norm_eval(s.d_model, st.nu, st.ln_series, x)).y : fold_mean(x);
    const int Ls = encoder_len(s);
    b.cross = cross_statistics(s.d_model, Ls, b.u, enc, w.cross_q, w.cross_k);
    b.mid = cross_head_forward(s.d_model, Ls, s.p_attention, w.cross_v, enc, b.cross);
    const signal<T> f = linear_forward(s.d_model, w.cross_o, b.mid);
    return close_block(s, st, b, f);
}

template <class T>
signal<T> ffn_block_forward(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                            block_cache<T>& b, const signal<T>& x) noexcept {
    b.in = x;
    b.u = s.norm == norm_placement::pre ? (b.ln = layer_norm_eval(s.d_model, st.nu, st.ln_series, x)).y : x;
    b.mid = linear_forward(s.d_model, w.ffn1, b.u);
    b.act = activation_eval(s.act, b.mid);
    const signal<T> f = linear_forward(s.d_ff, w.ffn2, b.act.y);
    return close_block(s, st, b, f);
}

/// The state predict carries down a Post-LN stack's backward (post_ln.hpp): the spread of
/// the gradient arriving at the next block's output, and whether that block's input is a
/// LayerNorm output (every block but a stack's first). Pre-LN and no-LN blocks ignore it.
template <class T>
struct post_ln_state {
    post_ln_incoming<T> in{};
    bool ln_input{true};
};

/// Backward of a block's shared end: from the gradient at the block's output to the
/// gradient at the residual sum z (g_z) and at the branch's last linear output (returned).
template <class T>
gradient<T> open_block_backward(const transformer_spec<T>& s, const stack_setup<T>& st, const block_cache<T>& b,
                                const gradient<T>& g_out, gradient<T>& g_z, const post_ln_state<T>& pl,
                                bool ffn) noexcept {
    g_z = s.norm != norm_placement::post
              ? g_out
              : post_ln_backward(s.d_model, b.z, b.skip,
                                 post_ln_branch_phi(s.d_model, s.d_ff, ffn, s.p_hidden), pl.ln_input, pl.in,
                                 b.ln.grad_corr, g_out);
    return backward_impl(dropout<T>{s.p_hidden}, b.z, scale_gradient(st.beta, g_z));
}

/// The gradient at the block's input: lambda^2 g_z plus the branch's path (through the
/// Pre-LN LayerNorm when there is one). Post-LN: the skip path's correlation with the
/// branch (kappa: 1 for one map per token, the gradient's correlation for attention) and
/// the spread handed to the block below (post_ln.hpp).
template <class T>
gradient<T> close_block_backward(const transformer_spec<T>& s, const stack_setup<T>& st, const block_cache<T>& b,
                                 const gradient<T>& g_z, const gradient<T>& g_u, post_ln_state<T>& pl,
                                 const T& kappa) noexcept {
    if (s.norm == norm_placement::pre) return gradient_sum(st.lambda, g_z, ln_backward(s.d_model, b.in, b.ln, g_u));
    if (s.norm == norm_placement::none) return gradient_sum(st.lambda, g_z, g_u);
    const T perp = b.z.var > b.skip && b.z.var < std::numeric_limits<T>::infinity() ? (b.z.var - b.skip) / b.z.var : T(0);
    // mul0: at d = 4 a sum with no skip share (perp = 1) cancels the skip path exactly.
    const gradient<T> gs{mul0(g_z.var, post_ln_skip_factor(s.d_model, perp, kappa)), g_z.corr};
    pl.in = post_ln_below(mul0(st.lambda * st.lambda, gs.var), g_u.var);
    pl.ln_input = true;
    return gradient_sum(st.lambda, gs, g_u);
}

/// The final LayerNorm's backward. On a Post-LN stack its input is already a LayerNorm
/// output: every token's sample variance is exactly its variance, so the gradient variance
/// only loses the isotropic 2/d of the projection ((d-2)/d, post_ln_backward with no
/// branch) instead of the component's chi-square (d-2)/(d-3).
template <class T>
gradient<T> final_norm_backward(const transformer_spec<T>& s, const signal<T>& x, const gradient<T>& g) noexcept {
    const gradient<T> comp = ln_backward(s.d_model, x, g);
    if (s.norm != norm_placement::post) return comp;
    return {post_ln_backward(s.d_model, x, x.var, T(0), true, post_ln_incoming<T>{}, T(1), g).var, comp.corr};
}

/// kappa of an attention block: the share of g_z common to the tokens (clamped to [0, 1]).
template <class T>
T attention_kappa(const gradient<T>& g_z) noexcept {
    return g_z.corr > T(0) ? (g_z.corr < T(1) ? g_z.corr : T(1)) : T(0);
}

template <class T>
gradient<T> attention_block_backward(const transformer_spec<T>& s, const stack_setup<T>& st,
                                     const layer_sigmas<T>& w, const block_cache<T>& b,
                                     const gradient<T>& g_out, weight_grad_norms<T>& wg,
                                     post_ln_state<T>& pl) noexcept {
    gradient<T> g_z;
    const gradient<T> g_o = open_block_backward(s, st, b, g_out, g_z, pl, false);
    const int d = s.d_model;
    wg.o = weight_grad_norm(d, d, st.L, b.mid, g_o);
    const gradient<T> gh = linear_backward(d, w.o, g_o);
    const auto m = self_attention_of(s, w, st);
    const auto at = self_attention_gradients(m, b.u, gh, b.scores, b.aniso);
    const T qk = weight_grad_norm(d, d, st.L, b.u, at.qk);
    wg.q = mul0(qk, w.k * w.k);
    wg.k = mul0(qk, w.q * w.q);
    wg.v = weight_grad_norm(d, d, st.L, b.u, at.v);
    const gradient<T> g_u = attention_input_gradient(m, at);
    return close_block_backward(s, st, b, g_z, g_u, pl, attention_kappa(g_z));
}

template <class T>
gradient<T> cross_block_backward(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                                 const block_cache<T>& b, const signal<T>& enc, const gradient<T>& g_out,
                                 weight_grad_norms<T>& wg, gradient<T>& g_enc, post_ln_state<T>& pl) noexcept {
    gradient<T> g_z;
    const gradient<T> g_o = open_block_backward(s, st, b, g_out, g_z, pl, false);
    const int d = s.d_model, Ls = encoder_len(s);
    wg.cross_o = weight_grad_norm(d, d, st.L, b.mid, g_o);
    const gradient<T> gh = linear_backward(d, w.cross_o, g_o);
    const auto cg = cross_backward(d, s.heads, st.L, Ls, s.p_attention, w.cross_q, w.cross_k, w.cross_v,
                                   b.u, enc, b.cross, gh, b.aniso);
    const T qk = weight_grad_norm(d, d, st.L, b.u, cg.at.qk);
    wg.cross_q = mul0(qk, w.cross_k * w.cross_k);
    wg.cross_k = mul0(qk, w.cross_q * w.cross_q);
    wg.cross_v = weight_grad_norm(d, d, Ls, enc, cg.at.v);
    // The encoder output feeds every decoder layer; the contributions of different layers
    // are uncorrelated (independent weights), so they add.
    gradient<T> sum;
    add_weighted(T(1), g_enc.var, g_enc.corr, T(1), cg.encoder.var, cg.encoder.corr, sum.var, sum.corr);
    g_enc = sum;
    return close_block_backward(s, st, b, g_z, cg.decoder, pl, attention_kappa(g_z));
}

template <class T>
gradient<T> ffn_block_backward(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                               const block_cache<T>& b, const gradient<T>& g_out, weight_grad_norms<T>& wg,
                               post_ln_state<T>& pl) noexcept {
    gradient<T> g_z;
    const gradient<T> g2 = open_block_backward(s, st, b, g_out, g_z, pl, true);
    const int d = s.d_model, f = s.d_ff;
    wg.ffn2 = weight_grad_norm(f, d, st.L, b.act.y, g2);
    const gradient<T> ga = linear_backward(d, w.ffn2, g2);
    const gradient<T> g1 = activation_backward(s.act, b.mid, b.act, ga);
    wg.ffn1 = weight_grad_norm(d, f, st.L, b.u, g1);
    const gradient<T> g_u = linear_backward(f, w.ffn1, g1);
    return close_block_backward(s, st, b, g_z, g_u, pl, T(1));
}

/// The skip's share lambda^2 t of the token-specific variance at a block's residual sum.
template <class T>
T skip_token_specific(const stack_setup<T>& st, const block_cache<T>& b) noexcept {
    return st.lambda * st.lambda * token_specific_variance(b.in);
}

/// The stream's anisotropy after an FFN block (anisotropy.hpp): the part of the branch
/// that is linear in each token's deviation has variance beta^2 E[f'(h_i) f'(h_j)]
/// d sigma_1^2 d_ff sigma_2^2 t_u (the slope product of two tokens at the pre-activation
/// correlation; hidden dropout leaves it unchanged).
template <class T>
T ffn_anisotropy(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                 const block_cache<T>& b) noexcept {
    const gradient<T> slopes = activation_backward(s.act, b.mid, b.act, gradient<T>{T(1), T(1)});
    const T linear = st.beta * st.beta * slopes.var * slopes.corr * T(s.d_model) * w.ffn1 * w.ffn1 *
                     T(s.d_ff) * w.ffn2 * w.ffn2 * token_specific_variance(b.u);
    return anisotropy_after_ffn(b.aniso, skip_token_specific(st, b), linear, token_specific_variance(b.z),
                                s.d_model, s.d_ff);
}

/// The points of one stack (forward), with the caches for its backward.
template <class T>
signal<T> stack_forward(const transformer_spec<T>& s, const stack_setup<T>& st, const signal<T>& x0,
                        const signal<T>* enc, std::vector<layer_cache<T>>& cache,
                        std::vector<boundary<T>>& pts, signal<T>& before_final) {
    signal<T> x = x0;
    T aniso = T(1);  // the input is isotropic (i.i.d. embedding rows or given moments)
    pts.push_back({boundary_kind::input, st.kind, -1, x, {}});
    for (int l = 0; l < s.layers; ++l) {
        const layer_sigmas<T>& w = s.sigmas[std::size_t(st.sigma_offset + l)];
        layer_cache<T>& c = cache[std::size_t(l)];
        c.attn.aniso = aniso;
        x = attention_block_forward(s, st, w, c.attn, x);
        aniso = anisotropy_after_attention(aniso, skip_token_specific(st, c.attn), token_specific_variance(c.attn.z));
        pts.push_back({boundary_kind::attention, st.kind, l, x, {}});
        if (st.cross) {
            c.cross.aniso = st.cross_aniso;  // its query/key norms see the keys' scatter
            x = cross_block_forward(s, st, w, c.cross, x, *enc);
            aniso = anisotropy_after_attention(aniso, skip_token_specific(st, c.cross), token_specific_variance(c.cross.z));
            pts.push_back({boundary_kind::cross_attention, st.kind, l, x, {}});
        }
        c.ffn.aniso = aniso;
        x = ffn_block_forward(s, st, w, c.ffn, x);
        aniso = ffn_anisotropy(s, st, w, c.ffn);
        pts.push_back({boundary_kind::ffn, st.kind, l, x, {}});
    }
    before_final = x;
    if (s.final_norm) {
        x = forward_impl(layer_norm<T>{s.d_model}, x);
        pts.push_back({boundary_kind::final_norm, st.kind, s.layers, x, {}});
    }
    return x;
}

/// Backward over one stack; `first` is the index of the stack's input point in pts.
template <class T>
void stack_backward(const transformer_spec<T>& s, const stack_setup<T>& st, const signal<T>* enc,
                    const std::vector<layer_cache<T>>& cache, std::vector<boundary<T>>& pts, std::size_t first,
                    const signal<T>& before_final, const gradient<T>& g_top,
                    std::vector<weight_grad_norms<T>>& wgs, gradient<T>* g_enc) {
    std::size_t i = first + std::size_t(s.layers) * (st.cross ? 3u : 2u) + (s.final_norm ? 1u : 0u);
    gradient<T> g = g_top;
    pts[i].g = g;
    post_ln_state<T> pl;
    if (s.final_norm) {
        g = final_norm_backward(s, before_final, g);
        pts[--i].g = g;
        pl.in = final_norm_incoming<T>();
    }
    for (int l = s.layers - 1; l >= 0; --l) {
        const layer_sigmas<T>& w = s.sigmas[std::size_t(st.sigma_offset + l)];
        const layer_cache<T>& c = cache[std::size_t(l)];
        weight_grad_norms<T>& wg = wgs[std::size_t(st.sigma_offset + l)];
        g = ffn_block_backward(s, st, w, c.ffn, g, wg, pl);
        pts[--i].g = g;
        if (st.cross) {
            g = cross_block_backward(s, st, w, c.cross, *enc, g, wg, *g_enc, pl);
            pts[--i].g = g;
        }
        pl.ln_input = l > 0;
        g = attention_block_backward(s, st, w, c.attn, g, wg, pl);
        pts[--i].g = g;
    }
}

template <class T>
bool any_inf(const weight_grad_norms<T>& w) noexcept {
    const T inf = std::numeric_limits<T>::infinity();
    return w.q == inf || w.k == inf || w.v == inf || w.o == inf || w.ffn1 == inf || w.ffn2 == inf ||
           w.cross_q == inf || w.cross_k == inf || w.cross_v == inf || w.cross_o == inf;
}

/// The first layer (in spec.sigmas order: an encoder-decoder's decoder layers after its N
/// encoder layers) touched by an infinite variance, or -1: trajectory::overflow_layer.
template <class T>
int first_overflow_layer(const trajectory<T>& tr, int N, bool encdec) noexcept {
    const T inf = std::numeric_limits<T>::infinity();
    int first = -1;
    for (const auto& p : tr.points) {
        if (p.x.var == inf || p.g.var == inf) {
            int l = p.layer < 0 ? 0 : (p.layer >= N ? N - 1 : p.layer);
            if (p.stack == stack_kind::decoder && encdec) l += N;
            if (first < 0 || l < first) first = l;
        }
    }
    for (std::size_t l = 0; l < tr.weight_grads.size(); ++l)
        if (any_inf(tr.weight_grads[l]) && (first < 0 || int(l) < first)) first = int(l);
    return first;
}

}  // namespace detail

/// Throws sigprop::invalid_argument naming the field, its value and the rule for every
/// spec predict() cannot evaluate.
template <class T>
void validate(const transformer_spec<T>& s) {
    using namespace detail;
    const char* n = spec_name;
    require_size(n, "layers", s.layers);
    // The enums: a value cast from an integer outside the enumerators is rejected.
    if (unsigned(s.norm) > unsigned(norm_placement::none)) fail(n, "norm", unsigned(s.norm), "{pre = 0, post = 1, none = 2}");
    if (unsigned(s.act) > unsigned(activation::gelu)) fail(n, "act", unsigned(s.act), "{relu = 0, gelu = 1}");
    if (unsigned(s.arch) > unsigned(architecture::encoder_decoder))
        fail(n, "arch", unsigned(s.arch), "{encoder = 0, decoder = 1, encoder_decoder = 2}");
    // d >= 4: the LayerNorm's gradient variance (d-2)/(d-3) needs it.
    require_size(n, "d_model", s.d_model, 4);
    require_size(n, "heads", s.heads);
    if (s.d_model % s.heads != 0)
        fail(n, "heads", s.heads, "{divisors of d_model = " + std::to_string(s.d_model) + "}");
    require_size(n, "d_ff", s.d_ff);
    require_size(n, "seq_len", s.seq_len, 2);
    if (s.arch == architecture::encoder_decoder && s.source_len != 0) require_size(n, "source_len", s.source_len, 2);
    if (s.arch != architecture::encoder_decoder && s.source_len != 0)
        fail(n, "source_len", s.source_len, "{0} (only an encoder-decoder has a source length)");
    require_drop_probability(n, "p_hidden", s.p_hidden);
    require_drop_probability(n, "p_attention", s.p_attention);
    require_drop_probability(n, "p_embedding", s.p_embedding);
    require_positive(n, "lambda", s.lambda);
    require_nonnegative(n, "beta", s.beta);
    if (s.decoder_lambda) require_positive(n, "decoder_lambda", *s.decoder_lambda);
    if (s.decoder_beta) require_nonnegative(n, "decoder_beta", *s.decoder_beta);
    const int want = expected_sigmas(s);
    if (static_cast<long long>(s.sigmas.size()) != want)
        fail(n, "sigmas.size()", s.sigmas.size(),
             "{" + std::to_string(want) + "} (one entry per layer" +
                 (s.arch == architecture::encoder_decoder ? std::string(", 2 * layers for an encoder-decoder)")
                                                          : std::string(")")));
    // One pass without branches first (a thousand-layer spec has ten thousand sigmas and
    // predict() validates on every call); the loop that names the offender runs only when
    // there is one.
    bool sigmas_ok = true;
    for (const layer_sigmas<T>& w : s.sigmas)
        for (const T& v : {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2, w.cross_q, w.cross_k, w.cross_v, w.cross_o})
            sigmas_ok &= (v >= T(0)) & (v <= std::numeric_limits<T>::max());
    for (std::size_t i = 0; !sigmas_ok && i < s.sigmas.size(); ++i) {
        const layer_sigmas<T>& w = s.sigmas[i];
        const T all[] = {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2, w.cross_q, w.cross_k, w.cross_v, w.cross_o};
        static constexpr const char* names[] = {"q", "k", "v", "o", "ffn1", "ffn2",
                                                "cross_q", "cross_k", "cross_v", "cross_o"};
        for (int j = 0; j < 10; ++j)
            if (!(is_finite(all[j]) && all[j] >= T(0)))
                require_nonnegative(n, "sigmas[" + std::to_string(i) + "]." + names[j], all[j]);
    }
    if (s.embed) {
        validate(*s.embed);
        const signal<T> e = forward_impl(s.embed->tables.data(), s.embed->tables.size());
        if (!(e.var > T(0)))
            fail(n, "embed variance", e.var, "(0, inf) (the tables must not all have sigma = 0)");
    } else {
        check_signal(n, s.input, "input");
        if (!(s.input.var > T(0)))
            fail(n, "input.var", s.input.var, "(0, inf) (without an embedding the input moments are the model's input)");
    }
    check_gradient(n, s.output_gradient, "output_gradient");
}

/// The model's input moments: the embedding's output after embedding dropout, or
/// spec.input as given (no dropout is applied to given moments).
template <class T>
signal<T> input_moments(const transformer_spec<T>& s) {
    if (!s.embed) return s.input;
    const signal<T> e = detail::forward_impl(s.embed->tables.data(), s.embed->tables.size());
    return detail::forward_impl(dropout<T>{s.p_embedding}, e);
}

/// Forward and backward moments at every residual boundary and the expected squared
/// Frobenius norm of every weight gradient (one sequence, loss sum(Y * G) with G of the
/// spec's output_gradient moments). O(layers + seq_len) work for well-scaled scores; a
/// causal block adds O(rows where a softmax clamp binds), up to O(seq_len) (causal_rows.hpp).
template <class T>
trajectory<T> predict(const transformer_spec<T>& s) {
    using namespace detail;
    validate(s);
    trajectory<T> tr;
    const int N = s.layers;
    const bool encdec = s.arch == architecture::encoder_decoder;
    const std::size_t per_layer = encdec ? 5u : 2u;
    tr.points.reserve(std::size_t(N) * per_layer + 4);
    tr.weight_grads.assign(std::size_t(expected_sigmas(s)), weight_grad_norms<T>{});
    const signal<T> x0 = input_moments(s);
    const T nu = chi_mean_sq_ratio<T>(s.d_model - 1);
    const half_half_2f1_table<T> series = half_half_2f1_table_of<T>(static_cast<long long>(s.d_model) + 1);  // once per model
    std::vector<layer_cache<T>> enc_fresh, dec_fresh;
    std::vector<layer_cache<T>>& enc_cache = reused_caches<T>(0, N, enc_fresh);
    signal<T> enc_before{}, enc_out{}, dec_before{};
    // Every causal block of the model attends over seq_len tokens: one table for all.
    const bool tabulate = s.arch != architecture::encoder && s.seq_len <= max_tabulated_len;
    const inverse_power_tails<T> table = tabulate ? inverse_power_tails_of<T>(s.seq_len) : inverse_power_tails<T>{};
    const inverse_power_tails<T>* tails = tabulate ? &table : nullptr;
    if (s.arch == architecture::decoder) {
        const stack_setup<T> st{stack_kind::decoder, 0, s.seq_len, true, false, s.lambda, s.beta, nu, series, tails};
        stack_forward(s, st, x0, static_cast<const signal<T>*>(nullptr), enc_cache, tr.points, dec_before);
        stack_backward(s, st, static_cast<const signal<T>*>(nullptr), enc_cache, tr.points, 0, dec_before,
                       s.output_gradient, tr.weight_grads, static_cast<gradient<T>*>(nullptr));
    } else {
        const stack_setup<T> est{stack_kind::encoder, 0, encoder_len(s), false, false, s.lambda, s.beta, nu, series};
        enc_out = stack_forward(s, est, x0, static_cast<const signal<T>*>(nullptr), enc_cache, tr.points,
                                enc_before);
        enc_out = fold_mean(enc_out);  // cross-attention needs zero-mean keys and values
        gradient<T> g_enc = s.output_gradient;
        if (encdec) {
            const std::size_t dec_first = tr.points.size();
            // The encoder output's anisotropy: after its last FFN block (a final LayerNorm
            // rescales tokens and keeps it).
            const T enc_aniso = ffn_anisotropy(s, est, s.sigmas[std::size_t(N - 1)], enc_cache[std::size_t(N - 1)].ffn);
            const stack_setup<T> dst{stack_kind::decoder, N, s.seq_len, true, true,
                                     s.decoder_lambda.value_or(s.lambda), s.decoder_beta.value_or(s.beta), nu, series,
                                     tails, enc_aniso};
            std::vector<layer_cache<T>>& dec_cache = reused_caches<T>(1, N, dec_fresh);
            stack_forward(s, dst, x0, &enc_out, dec_cache, tr.points, dec_before);
            g_enc = gradient<T>{T(0), T(0)};
            stack_backward(s, dst, &enc_out, dec_cache, tr.points, dec_first, dec_before, s.output_gradient,
                           tr.weight_grads, &g_enc);
        }
        stack_backward(s, est, static_cast<const signal<T>*>(nullptr), enc_cache, tr.points, 0, enc_before, g_enc,
                       tr.weight_grads, static_cast<gradient<T>*>(nullptr));
    }
    tr.overflow_layer = detail::first_overflow_layer(tr, N, encdec);
    return tr;
}

}  // namespace sigprop
