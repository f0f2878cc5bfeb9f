#pragma once
// Initialisation and residual-scaling schemes as presets that fill a transformer_spec's
// sigmas, lambda and beta, and an init solver that sets the sigmas so that every branch
// has a target output variance. Sources and mapping onto the spec: docs/theory/models.md.
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/math/tools/roots.hpp>

#include "sigprop/core/errors.hpp"
#include "sigprop/models/predict.hpp"
#include "sigprop/models/resolved.hpp"
#include "sigprop/models/spec.hpp"

namespace sigprop {

namespace detail {
/// Resize spec.sigmas to the size predict expects (new entries default-constructed).
template <class T>
void size_sigmas(transformer_spec<T>& s) {
    require_size(spec_name, "layers", s.layers);
    s.sigmas.resize(std::size_t(expected_sigmas(s)));
}

/// sigma of torch.nn.init.xavier_normal_(W, gain): gain sqrt(2 / (fan_in + fan_out)).
template <class T>
T xavier_sigma(int fan_in, int fan_out, T gain = T(1)) noexcept {
    using std::sqrt;
    return gain * sqrt(T(2) / T(fan_in + fan_out));
}
}  // namespace detail

// ----------------------------------------------------------------------------------------
// Standard residual (lambda = beta = 1) with three common initialisations.

/// BERT (Devlin et al. 2019; Hugging Face BertConfig.initializer_range = 0.02): every
/// weight matrix N(0, sigma^2), sigma = 0.02 by default; lambda = beta = 1.
template <class T>
void apply_bert(transformer_spec<T>& s, T sigma = T(0.02)) {
    detail::require_nonnegative("apply_bert", "sigma", sigma);
    detail::size_sigmas(s);
    for (auto& w : s.sigmas) w = {sigma, sigma, sigma, sigma, sigma, sigma, sigma, sigma, sigma, sigma};
    s.lambda = T(1);
    s.beta = T(1);
    s.decoder_lambda.reset();
    s.decoder_beta.reset();
}

/// Which Xavier/Glorot variant: `fan_avg` is Glorot & Bengio (2010) and
/// torch.nn.init.xavier_normal_, sigma^2 = 2 / (fan_in + fan_out); `fan_in` is the
/// variance-preserving (LeCun) variant, sigma^2 = 1 / fan_in, which REFERENCE.md calls
/// "Xavier-like".
enum class xavier_rule : unsigned char { fan_avg, fan_in };

/// Xavier: q, k, v, o (d x d) get sigma^2 = 1/d under both rules; ffn1 (d -> d_ff) and
/// ffn2 (d_ff -> d) get 2/(d + d_ff) (fan_avg) or 1/d and 1/d_ff (fan_in). lambda = beta = 1.
template <class T>
void apply_xavier(transformer_spec<T>& s, xavier_rule rule = xavier_rule::fan_avg) {
    using std::sqrt;
    detail::size_sigmas(s);
    detail::require_size(detail::spec_name, "d_model", s.d_model);
    detail::require_size(detail::spec_name, "d_ff", s.d_ff);
    const T a = T(1) / sqrt(T(s.d_model));
    const T f1 = rule == xavier_rule::fan_avg ? detail::xavier_sigma<T>(s.d_model, s.d_ff) : a;
    const T f2 = rule == xavier_rule::fan_avg ? f1 : T(1) / sqrt(T(s.d_ff));
    for (auto& w : s.sigmas) w = {a, a, a, a, f1, f2, a, a, a, a};
    s.lambda = T(1);
    s.beta = T(1);
    s.decoder_lambda.reset();
    s.decoder_beta.reset();
}

/// GPT-2 (Radford et al. 2019; the released code and Hugging Face GPT2 `c_proj` rule):
/// every matrix N(0, 0.02^2), and the projections that write into the residual stream
/// (o and ffn2, and cross_o) scaled by 1/sqrt(2 N) with N = layers of the stack (2 N is
/// the number of residual blocks). lambda = beta = 1.
template <class T>
void apply_gpt2(transformer_spec<T>& s, T sigma = T(0.02)) {
    using std::sqrt;
    apply_bert(s, sigma);
    const T out = sigma / sqrt(T(2 * s.layers));
    for (auto& w : s.sigmas) {
        w.o = out;
        w.ffn2 = out;
        w.cross_o = out;
    }
}

// ----------------------------------------------------------------------------------------
// DeepNet / DeepNorm (Wang et al. 2022, "DeepNet: Scaling Transformers to 1,000 Layers",
// Table 1 / Figure 2, and microsoft/torchscale). N encoder layers, M decoder layers.

template <class T>
struct deepnorm_constants {
    T encoder_alpha{1}, encoder_beta{1};  ///< unused (1) for a decoder-only model
    T decoder_alpha{1}, decoder_beta{1};  ///< unused (1) for an encoder-only model
};

/// encoder-only: alpha = (2N)^(1/4), beta = (8N)^(-1/4); decoder-only: alpha = (2M)^(1/4),
/// beta = (8M)^(-1/4); encoder-decoder: encoder alpha = 0.81 (N^4 M)^(1/16),
/// beta = 0.87 (N^4 M)^(-1/16), decoder alpha = (3M)^(1/4), beta = (12M)^(-1/4).
/// (torchscale writes the encoder-decoder encoder beta as (N^4 M)^(-1/16) / 1.15.)
template <class T>
deepnorm_constants<T> deepnorm(architecture arch, int N, int M) {
    using std::pow;
    detail::require_size("deepnorm", "N", N);
    detail::require_size("deepnorm", "M", M);
    deepnorm_constants<T> c;
    const T n = T(N), m = T(M);
    switch (arch) {
        case architecture::encoder:
            c.encoder_alpha = pow(T(2) * n, T(0.25));
            c.encoder_beta = pow(T(8) * n, T(-0.25));
            break;
        case architecture::decoder:
            c.decoder_alpha = pow(T(2) * m, T(0.25));
            c.decoder_beta = pow(T(8) * m, T(-0.25));
            break;
        case architecture::encoder_decoder:
            c.encoder_alpha = T(0.81) * pow(n * n * n * n * m, T(1) / T(16));
            c.encoder_beta = T(0.87) * pow(n * n * n * n * m, T(-1) / T(16));
            c.decoder_alpha = pow(T(3) * m, T(0.25));
            c.decoder_beta = pow(T(12) * m, T(-0.25));
            break;
    }
    return c;
}

/// DeepNorm mapped onto the spec: Post-LN, x <- LN(alpha x + F(x)), so lambda = alpha and
/// beta = 1 (decoder_lambda = the decoder's alpha for an encoder-decoder); weights as the
/// paper's pseudo-code: xavier_normal_ (fan_avg) with gain beta for v, o, ffn1, ffn2 (and
/// cross_v, cross_o) and gain 1 for q, k (and cross_q, cross_k). N = M = layers.
/// (torchscale's own base init differs in detail - Xavier-uniform q/k/v with gain
/// 1/sqrt(2), default nn.Linear FFN - before the same division by 1/beta.)
template <class T>
void apply_deepnorm(transformer_spec<T>& s) {
    detail::size_sigmas(s);
    const auto c = deepnorm<T>(s.arch, s.layers, s.layers);
    s.norm = norm_placement::post;
    const int d = s.d_model, f = s.d_ff;
    auto fill = [&](layer_sigmas<T>& w, T b) {
        const T a = detail::xavier_sigma<T>(d, d);
        w.q = w.k = w.cross_q = w.cross_k = a;
        w.v = w.o = w.cross_v = w.cross_o = detail::xavier_sigma<T>(d, d, b);
        w.ffn1 = w.ffn2 = detail::xavier_sigma<T>(d, f, b);
    };
    const bool dec = s.arch == architecture::decoder;
    for (int l = 0; l < s.layers; ++l) fill(s.sigmas[std::size_t(l)], dec ? c.decoder_beta : c.encoder_beta);
    if (s.arch == architecture::encoder_decoder)
        for (int l = 0; l < s.layers; ++l) fill(s.sigmas[std::size_t(s.layers + l)], c.decoder_beta);
    s.lambda = dec ? c.decoder_alpha : c.encoder_alpha;
    s.beta = T(1);
    s.decoder_lambda.reset();
    s.decoder_beta.reset();
    if (s.arch == architecture::encoder_decoder) {
        s.decoder_lambda = c.decoder_alpha;
        s.decoder_beta = T(1);
    }
}

// ----------------------------------------------------------------------------------------
// T-Fixup (Huang, Perez, Ba, Volkovs 2020, "Improving Transformer Optimization Through
// Better Initialization", Section 3.2, and its official code layer6ai-labs/T-Fixup,
// fairseq/modules/transformer_layer.py and fairseq/models/transformer.py):
//   1. Xavier for every matrix (fairseq: xavier_uniform_; v_proj has gain 1/sqrt(2) there,
//      undone by the code's extra sqrt(2), so Xavier gain 1 for all), embeddings Gaussian
//      with variance d^(-1/2) (the paper's N(0, d^(-1/2)));
//   2. decoder: v, o (self and cross) and both FFN matrices times (9M)^(-1/4); the input
//      embeddings of the encoder and of the decoder times (9N)^(-1/4) and (9M)^(-1/4)
//      (the code scales the encoder's table by (9 * encoder_layers)^(-1/4));
//   3. encoder: v, o and both FFN matrices times 0.67 N^(-1/4);
//   4. no LayerNorm anywhere (the code's --dont-use-layernorm also drops the final one) and
//      no learning-rate warmup (a training matter, not modelled).
// N = M = layers here. lambda = beta = 1. The official run also multiplies the embedding
// by sqrt(d) (fairseq's embed_scale) on a table of standard deviation d^(-1/2); that gives
// unit-variance embeddings before the (9N)^(-1/4) factor, which a caller can set on the
// tables instead.
template <class T>
void apply_tfixup(transformer_spec<T>& s) {
    using std::pow;
    using std::sqrt;
    apply_xavier(s, xavier_rule::fan_avg);
    const T n = T(s.layers);
    const T enc = T(0.67) * pow(n, T(-0.25));
    const T dec = pow(T(9) * n, T(-0.25));
    auto scale = [](layer_sigmas<T>& w, T f) {
        w.v *= f; w.o *= f; w.ffn1 *= f; w.ffn2 *= f; w.cross_v *= f; w.cross_o *= f;
    };
    const bool dec_only = s.arch == architecture::decoder;
    for (int l = 0; l < s.layers; ++l) scale(s.sigmas[std::size_t(l)], dec_only ? dec : enc);
    if (s.arch == architecture::encoder_decoder)
        for (int l = 0; l < s.layers; ++l) scale(s.sigmas[std::size_t(s.layers + l)], dec);
    // One embedding feeds both stacks here (spec.embed), and both tables get (9N)^(-1/4).
    if (s.embed)
        for (auto& t : s.embed->tables) t.sigma = pow(T(s.d_model), T(-0.25)) * dec;
    s.norm = norm_placement::none;
    s.final_norm = false;
}

// ----------------------------------------------------------------------------------------
// The init solver.

/// Per-branch targets. `forward`: the variance of every branch's output after its hidden
/// dropout (what the residual sum adds, before beta). `backward` (optional): every branch's
/// backward gain in the model, as branch_gains defines it.
template <class T>
struct init_targets {
    T forward{1};
    std::optional<T> backward{};
};

/// What the solver achieved, per layer, as predicted. `*_forward`: the branch's output
/// variance. `*_backward`: the branch's backward gain in the model - the gradient variance
/// the branch path delivers to the stream at the block's input (through the Pre-LN
/// LayerNorm when there is one) over the gradient variance at the branch's output (the
/// residual sum's gradient, before beta), for the gradient moments predict has there
/// (correlation included). With Pre-LN (or no LN), lambda^2 + beta^2 = 1 and unit forward
/// and backward targets, the stream's variance and its gradient's variance are then the
/// same at every residual boundary (the encoder of an encoder-decoder: its gradient comes
/// from the cross-attention, so only the ratio between its boundaries is kept).
template <class T>
struct branch_gains {
    T attention_forward{0}, attention_backward{0};
    T cross_forward{0}, cross_backward{0};
    T ffn_forward{0}, ffn_backward{0};
};

namespace detail {

template <class T>
signal<T> attention_branch(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                           const signal<T>& x) noexcept {
    const signal<T> u = s.norm == norm_placement::pre ? forward_impl(layer_norm<T>{s.d_model}, x) : fold_mean(x);
    const auto m = self_attention_of(s, w, st);
    const auto h = head_of(m);
    const signal<T> mid = m.causal ? causal_head_forward(h, u) : forward_impl(h, u);
    return forward_impl(dropout<T>{s.p_hidden}, forward_impl(linear<T>{s.d_model, s.d_model, w.o}, mid));
}

template <class T>
signal<T> cross_branch(const transformer_spec<T>& s, const layer_sigmas<T>& w, const signal<T>& x,
                       const signal<T>& enc) noexcept {
    const signal<T> u = s.norm == norm_placement::pre ? forward_impl(layer_norm<T>{s.d_model}, x) : fold_mean(x);
    const int Ls = encoder_len(s);
    const auto sc = cross_statistics(s.d_model, Ls, u, enc, w.cross_q, w.cross_k);
    const signal<T> mid = cross_head_forward(s.d_model, Ls, s.p_attention, w.cross_v, enc, sc);
    return forward_impl(dropout<T>{s.p_hidden}, forward_impl(linear<T>{s.d_model, s.d_model, w.cross_o}, mid));
}

template <class T>
signal<T> ffn_branch(const transformer_spec<T>& s, const layer_sigmas<T>& w, const signal<T>& x) noexcept {
    const signal<T> u = s.norm == norm_placement::pre ? forward_impl(layer_norm<T>{s.d_model}, x) : x;
    const signal<T> h1 = forward_impl(linear<T>{s.d_model, s.d_ff, w.ffn1}, u);
    const signal<T> h2 = activation_forward(s.act, h1);
    return forward_impl(dropout<T>{s.p_hidden}, forward_impl(linear<T>{s.d_ff, s.d_model, w.ffn2}, h2));
}

/// The attention-like branches' output variance is proportional to sigma_v^2 sigma_o^2
/// (exactly: the value projection and the output projection only scale it), so setting
/// both to c gives var(c) = var(1) c^4: closed form. Likewise the FFN's output variance is
/// proportional to ffn2^2.
template <class T>
T closed_form_scale(T var_at_one, T target) noexcept {
    using std::pow;
    return pow(target / var_at_one, T(0.25));
}

/// Root of var_ffn(c) = target for ffn1 = ffn2 = c (GeLU is not homogeneous, so var(c) has
/// no closed form): TOMS 748 on log c, bracketed by doubling from c = 1/sqrt(sqrt(d d_ff)).
/// var(c) is increasing in c for both activations.
template <class T>
T solve_ffn_scale(const transformer_spec<T>& s, layer_sigmas<T> w, const signal<T>& x, T target) {
    using std::exp;
    using std::log;
    using std::sqrt;
    auto f = [&](T t) {
        w.ffn1 = w.ffn2 = exp(t);
        return log(ffn_branch(s, w, x).var) - log(target);
    };
    T lo = -log(sqrt(sqrt(T(s.d_model) * T(s.d_ff)))), hi = lo;
    T flo = f(lo), fhi = flo;
    for (int i = 0; i < 200 && flo > T(0); ++i) { hi = lo; fhi = flo; lo -= T(1); flo = f(lo); }
    for (int i = 0; i < 200 && fhi < T(0); ++i) { lo = hi; flo = fhi; hi += T(1); fhi = f(hi); }
    if (!(flo <= T(0) && fhi >= T(0))) fail("solve_init", "targets.forward", target, "(reachable FFN variances)");
    if (flo == T(0)) return exp(lo);
    if (fhi == T(0)) return exp(hi);
    std::uintmax_t iters = 100;
    const auto tol = boost::math::tools::eps_tolerance<T>(std::numeric_limits<T>::digits - 3);
    const auto r = boost::math::tools::toms748_solve(f, lo, hi, flo, fhi, tol, iters);
    return exp((r.first + r.second) / T(2));
}

enum class block_type : unsigned char { attention, cross, ffn };

/// The parameter the backward target moves in a block (the forward target then fixes the
/// rest): q = k, cross_q = cross_k, or ffn1.
template <class T>
T& free_parameter(layer_sigmas<T>& w, block_type k) noexcept {
    return k == block_type::attention ? w.q : k == block_type::cross ? w.cross_q : w.ffn1;
}

template <class T>
void set_free_parameter(layer_sigmas<T>& w, block_type k, T v) noexcept {
    if (k == block_type::attention) w.q = w.k = v;
    else if (k == block_type::cross) w.cross_q = w.cross_k = v;
    else w.ffn1 = v;
}

/// Forward of one block with the sigmas as they are: returns the block's output, caches
/// into c and leaves the branch's output variance in `branch_var`.
template <class T>
signal<T> block_forward(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                        block_type k, layer_cache<T>& c, const signal<T>& x, const signal<T>* enc,
                        T& branch_var) noexcept {
    switch (k) {
        case block_type::attention:
            branch_var = attention_branch(s, st, w, x).var;
            return attention_block_forward(s, st, w, c.attn, x);
        case block_type::cross:
            branch_var = cross_branch(s, w, x, *enc).var;
            return cross_block_forward(s, st, w, c.cross, x, *enc);
        case block_type::ffn:
            break;
    }
    branch_var = ffn_branch(s, w, x).var;
    return ffn_block_forward(s, st, w, c.ffn, x);
}

/// The same after setting the branch to the forward target for input x: v = o (cross_v =
/// cross_o) in closed form; the FFN either ffn1 = ffn2 by root finding (`tied`) or ffn2 in
/// closed form for the current ffn1 (its output variance is proportional to ffn2^2).
template <class T>
signal<T> solve_block_forward(const transformer_spec<T>& s, const stack_setup<T>& st, layer_sigmas<T>& w,
                              block_type k, layer_cache<T>& c, const signal<T>& x, const signal<T>* enc, T target,
                              bool tied, T& branch_var) {
    using std::sqrt;
    switch (k) {
        case block_type::attention:
            w.v = w.o = T(1);
            w.v = w.o = closed_form_scale(attention_branch(s, st, w, x).var, target);
            break;
        case block_type::cross:
            w.cross_v = w.cross_o = T(1);
            w.cross_v = w.cross_o = closed_form_scale(cross_branch(s, w, x, *enc).var, target);
            break;
        case block_type::ffn:
            if (tied) {
                w.ffn1 = w.ffn2 = solve_ffn_scale(s, w, x, target);
            } else {
                w.ffn2 = T(1);
                w.ffn2 = sqrt(target / ffn_branch(s, w, x).var);
            }
            break;
    }
    return block_forward(s, st, w, k, c, x, enc, branch_var);
}

template <class T>
const block_cache<T>& cache_of(const layer_cache<T>& c, block_type k) noexcept {
    return k == block_type::attention ? c.attn : k == block_type::cross ? c.cross : c.ffn;
}

/// The gradient at a block's input from the gradient at its output (cross blocks add their
/// encoder-side gradient to *g_enc).
template <class T>
gradient<T> block_backward(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                           block_type k, const layer_cache<T>& c, const signal<T>* enc, const gradient<T>& g_out,
                           gradient<T>* g_enc, post_ln_state<T>& pl) noexcept {
    weight_grad_norms<T> wg;
    switch (k) {
        case block_type::attention: return attention_block_backward(s, st, w, c.attn, g_out, wg, pl);
        case block_type::cross: return cross_block_backward(s, st, w, c.cross, *enc, g_out, wg, *g_enc, pl);
        case block_type::ffn: return ffn_block_backward(s, st, w, c.ffn, g_out, wg, pl);
    }
    return g_out;
}

/// The branch's backward gain in the model (branch_gains): the block backward with the
/// skip path removed (lambda = 0) and beta = 1, over the gradient at the residual sum.
/// Computed that way rather than as (g_in - lambda^2 g_z) / (beta^2 g_z), which would
/// cancel when beta is small (DSLM's beta^2 = 1/N).
template <class T>
T branch_gain(const transformer_spec<T>& s, stack_setup<T> st, const layer_sigmas<T>& w, block_type k,
              const layer_cache<T>& c, const signal<T>* enc, const gradient<T>& g_out,
              post_ln_state<T> pl) noexcept {
    gradient<T> g_z;
    open_block_backward(s, st, cache_of(c, k), g_out, g_z, pl, k == block_type::ffn);
    st.lambda = T(0);
    st.beta = T(1);
    gradient<T> unused{T(0), T(0)};
    return block_backward(s, st, w, k, c, enc, g_out, &unused, pl).var / g_z.var;
}

/// Sets the block's free parameter so that its branch gain equals `target` while its
/// forward target stays met (for input x and output gradient g_out). The gain as a function
/// of the parameter has no closed form and need not be monotone (large query/key weights
/// both add Q/K-path gradient and saturate the softmax), so log t is scanned on a grid
/// (from 2^-12 to 2^6 times 1/sqrt(d), factors of sqrt 2) and the first sign change is
/// refined with Boost.Math TOMS 748. A gain that does not depend on the parameter (ReLU
/// FFN: both passes scale with ffn1^2 ffn2^2) and already equals the target is kept.
/// Throws naming targets.backward, its value and the reachable range otherwise.
template <class T>
void solve_block_backward(const transformer_spec<T>& s, const stack_setup<T>& st, layer_sigmas<T>& w, block_type k,
                          layer_cache<T>& c, const signal<T>& x, const signal<T>* enc, const gradient<T>& g_out,
                          const post_ln_state<T>& pl, const init_targets<T>& tg, int layer) {
    using std::abs;
    using std::exp;
    using std::log;
    using std::sqrt;
    const T target = *tg.backward;
    T unused;
    auto f = [&](T lt) {
        set_free_parameter(w, k, exp(lt));
        solve_block_forward(s, st, w, k, c, x, enc, tg.forward, false, unused);
        return log(branch_gain(s, st, w, k, c, enc, g_out, pl)) - log(target);
    };
    const T t0 = -log(sqrt(T(s.d_model)));
    const T step = log(T(2)) / T(2);
    T lo = t0 - T(24) * step, flo = f(lo);
    T gmin = flo, gmax = flo;
    bool found = abs(flo) <= T(1e-9);
    T hi = lo, fhi = flo;
    for (int i = 1; i <= 36 && !found; ++i) {
        hi = t0 + T(i - 24) * step;
        fhi = f(hi);
        if (is_finite(fhi)) {
            gmin = fhi < gmin ? fhi : gmin;
            gmax = fhi > gmax ? fhi : gmax;
        }
        if (abs(fhi) <= T(1e-9)) {
            lo = hi;
            flo = fhi;
            found = true;
        } else if (is_finite(flo) && is_finite(fhi) && ((flo < T(0)) != (fhi < T(0)))) {
            std::uintmax_t iters = 100;
            const auto tol = boost::math::tools::eps_tolerance<T>(std::numeric_limits<T>::digits - 3);
            const auto r = boost::math::tools::toms748_solve(f, lo, hi, flo, fhi, tol, iters);
            lo = (r.first + r.second) / T(2);
            found = true;
        } else {
            lo = hi;
            flo = fhi;
        }
    }
    if (!found) {
        const char* what = k == block_type::attention ? "attention" : k == block_type::cross ? "cross-attention" : "FFN";
        fail("solve_init", "targets.backward", target,
             "[" + format_value(target * exp(gmin)) + ", " + format_value(target * exp(gmax)) + "] (the " + what +
                 " branch gains reachable in layer " + std::to_string(layer) + " with targets.forward = " +
                 format_value(tg.forward) + (k == block_type::ffn ? ": an FFN's gain moves only through its activation's curvature, a ReLU FFN's not at all)" : ")"));
    }
    set_free_parameter(w, k, exp(lo));
    solve_block_forward(s, st, w, k, c, x, enc, tg.forward, false, unused);
}

/// One pass over the model: forward in order (solving the forward targets when
/// `solve_forward`), then backward from the output (solving the backward targets when
/// `solve_backward`), recording every branch's variance and gain in `out`. In a backward
/// solve the blocks above are set before the blocks below, which then change the stream
/// the blocks above see; solve_init repeats passes until the sigmas stop moving.
template <class T>
void init_pass(transformer_spec<T>& s, const init_targets<T>& tg, bool solve_forward, bool solve_backward,
               std::vector<branch_gains<T>>& out) {
    const std::size_t N = std::size_t(s.layers);
    const T nu = chi_mean_sq_ratio<T>(s.d_model - 1);
    struct stack_run {
        stack_setup<T> st;
        std::vector<layer_cache<T>> cache{};
        std::vector<signal<T>> in{};  ///< the input of each block, 3 slots per layer
        signal<T> before_final{};
    };
    static constexpr block_type order[3] = {block_type::attention, block_type::cross, block_type::ffn};
    auto fwd_of = [](branch_gains<T>& g, block_type b) -> T& {
        return b == block_type::attention ? g.attention_forward : b == block_type::cross ? g.cross_forward : g.ffn_forward;
    };
    auto bwd_of = [](branch_gains<T>& g, block_type b) -> T& {
        return b == block_type::attention ? g.attention_backward
               : b == block_type::cross   ? g.cross_backward
                                          : g.ffn_backward;
    };
    auto forward = [&](stack_run& r, signal<T> x, const signal<T>* enc) {
        r.cache.assign(N, layer_cache<T>{});
        r.in.assign(3 * N, signal<T>{});
        for (std::size_t l = 0; l < N; ++l) {
            const std::size_t i = std::size_t(r.st.sigma_offset) + l;
            for (block_type b : order) {
                if (b == block_type::cross && !r.st.cross) continue;
                r.in[3 * l + std::size_t(b)] = x;
                T& v = fwd_of(out[i], b);
                x = solve_forward ? solve_block_forward(s, r.st, s.sigmas[i], b, r.cache[l], x, enc, tg.forward,
                                                        !tg.backward, v)
                                  : block_forward(s, r.st, s.sigmas[i], b, r.cache[l], x, enc, v);
            }
        }
        r.before_final = x;
        return s.final_norm ? forward_impl(layer_norm<T>{s.d_model}, x) : x;
    };
    auto backward = [&](stack_run& r, gradient<T> g, const signal<T>* enc, gradient<T>* g_enc) {
        post_ln_state<T> pl;  // as predict's stack_backward
        if (s.final_norm) {
            g = final_norm_backward(s, r.before_final, g);
            pl.in = final_norm_incoming<T>();
        }
        for (std::size_t l = N; l-- > 0;) {
            const std::size_t i = std::size_t(r.st.sigma_offset) + l;
            for (int j = 2; j >= 0; --j) {
                const block_type b = order[j];
                if (b == block_type::cross && !r.st.cross) continue;
                if (b == block_type::attention) pl.ln_input = l > 0;
                if (solve_backward)
                    solve_block_backward(s, r.st, s.sigmas[i], b, r.cache[l], r.in[3 * l + std::size_t(b)], enc, g,
                                         pl, tg, int(i));
                bwd_of(out[i], b) = branch_gain(s, r.st, s.sigmas[i], b, r.cache[l], enc, g, pl);
                g = block_backward(s, r.st, s.sigmas[i], b, r.cache[l], enc, g, g_enc, pl);
            }
        }
    };
    const signal<T> x0 = input_moments(s);
    if (s.arch == architecture::decoder) {
        stack_run d{{stack_kind::decoder, 0, s.seq_len, true, false, s.lambda, s.beta, nu}};
        forward(d, x0, nullptr);
        backward(d, s.output_gradient, nullptr, nullptr);
        return;
    }
    stack_run e{{stack_kind::encoder, 0, encoder_len(s), false, false, s.lambda, s.beta, nu}};
    const signal<T> enc = fold_mean(forward(e, x0, nullptr));  // as predict: zero-mean keys and values
    gradient<T> g_enc = s.output_gradient;
    if (s.arch == architecture::encoder_decoder) {
        stack_run d{{stack_kind::decoder, s.layers, s.seq_len, true, true, s.decoder_lambda.value_or(s.lambda),
                     s.decoder_beta.value_or(s.beta), nu}};
        forward(d, x0, &enc);
        g_enc = gradient<T>{T(0), T(0)};
        backward(d, s.output_gradient, &enc, &g_enc);
    }
    backward(e, g_enc, nullptr, nullptr);
}

}  // namespace detail

/// Sets the sigmas so that every branch meets the targets, as predicted for the moments
/// the model really has there; lambda, beta and the sigmas the targets do not need are
/// kept.
///
/// Forward only: layer by layer in forward order, v = o (cross_v = cross_o) in closed form
/// and ffn1 = ffn2 by Boost.Math root finding so that each branch's output variance equals
/// targets.forward; q, k (cross_q, cross_k) are kept.
///
/// With targets.backward: each branch has one more free parameter, q = k (cross_q =
/// cross_k) for attention and the split between ffn1 and ffn2 for the FFN, set so that the
/// branch's gain (branch_gains) equals targets.backward while v = o (ffn2) keep the forward
/// target. The gains depend on the gradient arriving from above and the variances on the
/// stream from below, so whole forward-and-backward passes are repeated until no sigma
/// moves by more than 1000 machine epsilons (relative). Unreachable targets throw
/// sigprop::invalid_argument naming targets.backward, its value and the reachable range.
///
/// Returns the achieved per-branch variances and gains.
template <class T>
std::vector<branch_gains<T>> solve_init(transformer_spec<T>& s, const init_targets<T>& targets = {}) {
    using namespace detail;
    using std::abs;
    require_positive("solve_init", "targets.forward", targets.forward);
    if (targets.backward) require_positive("solve_init", "targets.backward", *targets.backward);
    size_sigmas(s);
    validate(s);
    std::vector<branch_gains<T>> out(s.sigmas.size());
    if (!targets.backward) {
        init_pass(s, targets, true, false, out);
        return out;
    }
    const T tol = T(1000) * std::numeric_limits<T>::epsilon();
    constexpr int max_passes = 100;
    for (int pass = 0; pass < max_passes; ++pass) {
        const std::vector<layer_sigmas<T>> before = s.sigmas;
        init_pass(s, targets, true, true, out);
        T moved = 0;
        for (std::size_t i = 0; i < before.size(); ++i) {
            const layer_sigmas<T>& a = before[i];
            const layer_sigmas<T>& b = s.sigmas[i];
            for (T r : {b.q / a.q, b.v / a.v, b.ffn1 / a.ffn1, b.ffn2 / a.ffn2, b.cross_q / a.cross_q,
                        b.cross_v / a.cross_v}) {
                const T m = abs(r - T(1));
                if (!(m <= moved)) moved = m;  // a NaN ratio (0/0) counts as moved
            }
        }
        if (moved <= tol) {
            init_pass(s, targets, false, false, out);
            return out;
        }
    }
    fail("solve_init", "targets.backward", *targets.backward,
         "(jointly with targets.forward = " + format_value(targets.forward) + "; the passes did not settle after " +
             std::to_string(max_passes) + ")");
}

// ----------------------------------------------------------------------------------------
// DeepScaleLM (Kedia et al. 2024; REFERENCE.md section 4).

/// What N means in beta^2 = k / N: the number of layers (the default; k = 1 reproduces the
/// paper's 192-layer BERT, beta^2 = 1/192 ~ 0.005) or the number of residual blocks
/// (2 per layer, 3 in an encoder-decoder's decoder).
enum class dslm_depth : unsigned char { layers, blocks };

/// Which forward prediction the DSLM solver holds each branch to unit variance with.
/// `pooled`: predict()'s (one variance and one pair correlation per boundary; O(layers)
/// work whatever L). `resolved`: the position-resolved forward of predict_forward_resolved
/// (resolved.hpp, docs/theory/models.md sections 4 and 8), which in a causal decoder
/// follows the real stream where the pooled forward lets it drift (a 48-layer Pre-LN
/// decoder, d = 256, L = 128: up to about 10 % with pooled; docs/ACCURACY.md, issue 4).
/// It costs one resolved forward, O(layers L^2) time (measured: 0.085 s for 48 layers at
/// L = 128, 1.2 s for 12 layers at L = 1024) and O(L^2) memory, against microseconds for
/// pooled, and supports encoder and decoder stacks with a zero input mean only; hence not
/// the default.
enum class dslm_forward : unsigned char { pooled, resolved };

template <class T>
struct dslm_options {
    T k{1};
    dslm_depth depth{dslm_depth::layers};
    dslm_forward forward{dslm_forward::pooled};
};

/// beta^2 = k / N for the spec's depth convention; k must be in (0, N] (beta^2 <= 1).
template <class T>
T dslm_beta2(const transformer_spec<T>& s, const dslm_options<T>& o) {
    detail::require_size(detail::spec_name, "layers", s.layers);
    const T n = o.depth == dslm_depth::layers ? T(s.layers) : T(2 * s.layers);
    if (!(o.k > T(0) && o.k <= n))
        detail::fail("dslm", "k", o.k, "(0, N = " + detail::format_value(n) + "] (beta^2 = k/N must be in (0, 1])");
    return o.k / n;
}

namespace detail {
/// apply_dslm's solve on the resolved forward (dslm_forward::resolved): one forward pass
/// that sets each branch's sigmas before evaluating it (resolved_tuning), the FFN's by the
/// same root finder as solve_init's (ffn1 = ffn2), then predict()'s backward gains.
template <class T>
std::vector<branch_gains<T>> solve_dslm_resolved(transformer_spec<T>& s) {
    validate(s);
    if (s.arch == architecture::encoder_decoder)
        fail("dslm", "arch", static_cast<int>(s.arch),
             "{encoder, decoder} with forward = resolved (the resolved forward has no cross-attention)");
    resolved_tuning<T> t{s.sigmas, T(1), [&s](layer_sigmas<T>& w, const signal<T>& x) {
                             w.ffn1 = w.ffn2 = solve_ffn_scale(s, w, x, T(1));
                         }};
    resolved_forward(s, static_cast<std::vector<resolved_block<T>>*>(nullptr), static_cast<resolved_state<T>*>(nullptr),
                     &t);
    s.sigmas = std::move(t.sigmas);
    std::vector<branch_gains<T>> out(s.sigmas.size());
    init_pass(s, init_targets<T>{T(1)}, false, false, out);
    for (std::size_t l = 0; l < out.size(); ++l) {
        out[l].attention_forward = t.achieved[2 * l];
        out[l].ffn_forward = t.achieved[2 * l + 1];
    }
    return out;
}
}  // namespace detail

/// Throws unless the spec satisfies DSLM's own constraint lambda^2 + beta^2 = 1 (relative
/// tolerance 1e-6, for both stacks of an encoder-decoder).
template <class T>
void check_dslm(const transformer_spec<T>& s) {
    auto one = [](const char* field, T l, T b) {
        const T v = l * l + b * b;
        using std::abs;
        if (!(abs(v - T(1)) <= T(1e-6))) detail::fail("dslm", field, v, "{1} (DSLM needs lambda^2 + beta^2 = 1)");
    };
    one("lambda^2 + beta^2", s.lambda, s.beta);
    if (s.decoder_lambda || s.decoder_beta)
        one("decoder_lambda^2 + decoder_beta^2", s.decoder_lambda.value_or(s.lambda), s.decoder_beta.value_or(s.beta));
}

/// DSLM: lambda^2 + beta^2 = 1 with beta^2 = k/N; q and k (and cross_q, cross_k) with
/// sigma^2 = 1/d; embedding tables (when present) N(0, (1 - p_embedding)/T) for T tables;
/// then v = o and ffn1 = ffn2 set by solve_init with unit branch variance, which is the
/// paper's per-layer rule generalised: it uses the correlation predict tracks (instead of
/// the paper's recursion), any d_ff and activation, hidden and attention dropout, causal
/// and cross attention. For a ReLU FFN it gives the paper's sigma^2 = sqrt(2 (1-p)/(d d_ff))
/// exactly; for attention it tends to the paper's sqrt((1-p)/r)/d as L grows and the
/// scores vanish (see dslm_paper_attention_sigma).
///
/// With o.forward = dslm_forward::resolved the same targets are met on the
/// position-resolved forward instead (dslm_forward): every branch adds one to the
/// stream's pooled variance as that forward predicts it, so its prediction of the stream
/// is one at every boundary. The returned forward fields are then the resolved forward's
/// branch variances, the backward fields predict()'s gains for the solved spec. Throws for
/// an encoder-decoder (naming arch) and, as predict_forward_resolved, for a nonzero input
/// mean.
template <class T>
std::vector<branch_gains<T>> apply_dslm(transformer_spec<T>& s, const dslm_options<T>& o = {}) {
    using std::sqrt;
    const T b2 = dslm_beta2(s, o);
    s.beta = sqrt(b2);
    s.lambda = sqrt(T(1) - b2);
    s.decoder_lambda.reset();
    s.decoder_beta.reset();
    detail::size_sigmas(s);
    const T qk = T(1) / sqrt(T(s.d_model));
    for (auto& w : s.sigmas) w.q = w.k = w.cross_q = w.cross_k = qk;
    if (s.embed) {
        const T nt = T(s.embed->tables.size());
        for (auto& t : s.embed->tables) t.sigma = sqrt((T(1) - s.p_embedding) / nt);
    }
    if (o.forward == dslm_forward::resolved) return detail::solve_dslm_resolved(s);
    return solve_init(s, init_targets<T>{T(1)});
}

/// The paper's closed forms (REFERENCE.md section 4), kept for comparison.
/// FFN (d -> d_ff -> d, ReLU): sigma^2 = sqrt(2 (1 - p) / (d d_ff)) for both matrices
/// (= sqrt((1-p)/2)/d at d_ff = 4d).
template <class T>
T dslm_paper_ffn_sigma(int d, int d_ff, T p) {
    using std::sqrt;
    detail::require_size("dslm_paper_ffn_sigma", "d", d);
    detail::require_size("dslm_paper_ffn_sigma", "d_ff", d_ff);
    detail::require_drop_probability("dslm_paper_ffn_sigma", "p", p);
    return sqrt(sqrt(T(2) * (T(1) - p) / (T(d) * T(d_ff))));
}

/// Attention V and output projection: sigma^2 = sqrt((1 - p)/r)/d, r the layer's input
/// correlation.
template <class T>
T dslm_paper_attention_sigma(int d, T r, T p) {
    using std::sqrt;
    detail::require_size("dslm_paper_attention_sigma", "d", d);
    if (!(r > T(0) && r <= T(1))) detail::fail("dslm_paper_attention_sigma", "r", r, "(0, 1] (a correlation; 0 has no finite sigma)");
    detail::require_drop_probability("dslm_paper_attention_sigma", "p", p);
    return sqrt(sqrt((T(1) - p) / r) / T(d));
}

}  // namespace sigprop
