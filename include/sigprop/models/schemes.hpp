#pragma once
// Initialisation and residual-scaling schemes as presets that fill a transformer_spec's
// sigmas, lambda and beta, and an init solver that sets the sigmas so that every branch
// has a target output variance. Sources and mapping onto the spec: docs/theory/models.md.
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <boost/math/tools/roots.hpp>

#include "sigprop/core/errors.hpp"
#include "sigprop/models/predict.hpp"
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
// Better Initialization", Section 3.2). Implemented: its weight scaling only - Xavier
// (fan_avg) for every matrix, then v, o, ffn1, ffn2 (and cross_v, cross_o) multiplied by
// 0.67 N^(-1/4) in the encoder and (9N)^(-1/4) in the decoder; embedding tables (when the
// spec has an embedding) N(0, d^(-1/2)) times the same factor (the encoder's for an
// encoder or encoder-decoder, the decoder's for a decoder-only model). lambda = beta = 1.
// Not expressible in the spec: T-Fixup also removes every LayerNorm (and warmup);
// norm_placement has no `none`, so `norm` is left as the caller set it.
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
    if (s.embed)
        for (auto& t : s.embed->tables) t.sigma = pow(T(s.d_model), T(-0.25)) * (dec_only ? dec : enc);
}

// ----------------------------------------------------------------------------------------
// The init solver.

/// Per-branch targets. `forward`: the variance of every branch's output after its hidden
/// dropout (what the residual sum adds, before beta).
template <class T>
struct init_targets {
    T forward{1};
};

/// What the solver achieved, per layer, as predicted: each branch's output variance and
/// its backward gain (gradient variance at the branch input over that at its output,
/// before the residual's beta), so that a caller can see the backward side too.
template <class T>
struct branch_gains {
    T attention_forward{0}, attention_backward{0};
    T cross_forward{0}, cross_backward{0};
    T ffn_forward{0}, ffn_backward{0};
};

namespace detail {

template <class T>
signal<T> attention_branch(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                           const signal<T>& x, T& back) noexcept {
    block_cache<T> b;
    b.in = x;
    b.u = s.norm == norm_placement::pre ? forward_impl(layer_norm<T>{s.d_model}, x) : fold_mean(x);
    const auto m = self_attention_of(s, w, st);
    const auto h = head_of(m);
    b.mid = m.causal ? causal_head_forward(h, b.u) : forward_impl(h, b.u);
    const signal<T> f = forward_impl(dropout<T>{s.p_hidden}, forward_impl(linear<T>{s.d_model, s.d_model, w.o}, b.mid));
    const gradient<T> g1{T(1), T(0)};
    const gradient<T> go = backward_impl(dropout<T>{s.p_hidden}, f, g1);
    back = backward_impl(m, b.u, go).var;
    return f;
}

template <class T>
signal<T> cross_branch(const transformer_spec<T>& s, const stack_setup<T>& st, const layer_sigmas<T>& w,
                       const signal<T>& x, const signal<T>& enc, T& back) noexcept {
    const signal<T> u = s.norm == norm_placement::pre ? forward_impl(layer_norm<T>{s.d_model}, x) : fold_mean(x);
    const int Ls = encoder_len(s);
    const auto sc = cross_statistics(s.d_model, Ls, u, enc, w.cross_q, w.cross_k);
    const signal<T> mid = cross_head_forward(s.d_model, Ls, s.p_attention, w.cross_v, enc, sc);
    const signal<T> f =
        forward_impl(dropout<T>{s.p_hidden}, forward_impl(linear<T>{s.d_model, s.d_model, w.cross_o}, mid));
    const gradient<T> go = backward_impl(dropout<T>{s.p_hidden}, f, gradient<T>{T(1), T(0)});
    const gradient<T> gh = backward_impl(linear<T>{s.d_model, s.d_model, w.cross_o}, mid, go);
    back = cross_backward(s.d_model, s.heads, st.L, Ls, s.p_attention, w.cross_q, w.cross_k, w.cross_v, u, enc, sc, gh)
               .decoder.var;
    return f;
}

template <class T>
signal<T> ffn_branch(const transformer_spec<T>& s, const layer_sigmas<T>& w, const signal<T>& x, T& back) noexcept {
    const signal<T> u = s.norm == norm_placement::pre ? forward_impl(layer_norm<T>{s.d_model}, x) : x;
    const signal<T> h1 = forward_impl(linear<T>{s.d_model, s.d_ff, w.ffn1}, u);
    const signal<T> h2 = activation_forward(s.act, h1);
    const signal<T> f = forward_impl(dropout<T>{s.p_hidden}, forward_impl(linear<T>{s.d_ff, s.d_model, w.ffn2}, h2));
    gradient<T> g = backward_impl(dropout<T>{s.p_hidden}, f, gradient<T>{T(1), T(0)});
    g = backward_impl(linear<T>{s.d_ff, s.d_model, w.ffn2}, h2, g);
    g = activation_backward(s.act, h1, g);
    back = backward_impl(linear<T>{s.d_model, s.d_ff, w.ffn1}, u, g).var;
    return f;
}

/// The attention-like branches' output variance is proportional to sigma_v^2 sigma_o^2
/// (exactly: the value projection and the output projection only scale it), so setting
/// both to c gives var(c) = var(1) c^4: closed form.
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
    T dummy;
    auto f = [&](T t) {
        w.ffn1 = w.ffn2 = exp(t);
        return log(ffn_branch(s, w, x, dummy).var) - log(target);
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

}  // namespace detail

/// Sets, layer by layer in forward order, v = o (cross_v = cross_o) and ffn1 = ffn2 so that
/// every branch's predicted output variance (after hidden dropout, for the input moments
/// the stream actually has there) equals targets.forward; q, k (cross_q, cross_k), lambda,
/// beta and everything else are kept. The attention branches are solved in closed form,
/// the FFN by Boost.Math root finding. Returns the achieved per-branch gains.
template <class T>
std::vector<branch_gains<T>> solve_init(transformer_spec<T>& s, const init_targets<T>& targets = {}) {
    using namespace detail;
    detail::require_positive("solve_init", "targets.forward", targets.forward);
    size_sigmas(s);
    validate(s);
    std::vector<branch_gains<T>> out(s.sigmas.size());
    const bool encdec = s.arch == architecture::encoder_decoder;
    auto run = [&](const stack_setup<T>& st, signal<T> x, const signal<T>* enc) {
        for (int l = 0; l < s.layers; ++l) {
            layer_sigmas<T>& w = s.sigmas[std::size_t(st.sigma_offset + l)];
            branch_gains<T>& bg = out[std::size_t(st.sigma_offset + l)];
            layer_cache<T> c;
            T back;
            w.v = w.o = T(1);
            w.v = w.o = closed_form_scale(attention_branch(s, st, w, x, back).var, targets.forward);
            bg.attention_forward = attention_branch(s, st, w, x, bg.attention_backward).var;
            x = attention_block_forward(s, st, w, c.attn, x);
            if (st.cross) {
                w.cross_v = w.cross_o = T(1);
                w.cross_v = w.cross_o = closed_form_scale(cross_branch(s, st, w, x, *enc, back).var, targets.forward);
                bg.cross_forward = cross_branch(s, st, w, x, *enc, bg.cross_backward).var;
                x = cross_block_forward(s, st, w, c.cross, x, *enc);
            }
            w.ffn1 = w.ffn2 = solve_ffn_scale(s, w, x, targets.forward);
            bg.ffn_forward = ffn_branch(s, w, x, bg.ffn_backward).var;
            x = ffn_block_forward(s, st, w, c.ffn, x);
        }
        if (s.final_norm) x = forward_impl(layer_norm<T>{s.d_model}, x);
        return x;
    };
    const signal<T> x0 = input_moments(s);
    const T nu = chi_mean_sq_ratio<T>(s.d_model - 1);
    if (s.arch == architecture::decoder) {
        run(stack_setup<T>{stack_kind::decoder, 0, s.seq_len, true, false, s.lambda, s.beta, nu}, x0, nullptr);
    } else {
        const signal<T> e =
            fold_mean(run(stack_setup<T>{stack_kind::encoder, 0, encoder_len(s), false, false, s.lambda, s.beta, nu}, x0,
                          nullptr));
        if (encdec)
            run(stack_setup<T>{stack_kind::decoder, s.layers, s.seq_len, true, true,
                               s.decoder_lambda.value_or(s.lambda), s.decoder_beta.value_or(s.beta), nu},
                x0, &e);
    }
    return out;
}

// ----------------------------------------------------------------------------------------
// DeepScaleLM (Kedia et al. 2024; REFERENCE.md section 4).

/// What N means in beta^2 = k / N: the number of layers (the default; k = 1 reproduces the
/// paper's 192-layer BERT, beta^2 = 1/192 ~ 0.005) or the number of residual blocks
/// (2 per layer, 3 in an encoder-decoder's decoder).
enum class dslm_depth : unsigned char { layers, blocks };

template <class T>
struct dslm_options {
    T k{1};
    dslm_depth depth{dslm_depth::layers};
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
    return solve_init(s, init_targets<T>{T(1)});
}

/// The paper's closed forms (REFERENCE.md section 4), kept for comparison.
/// FFN (d -> d_ff -> d, ReLU): sigma^2 = sqrt(2 (1 - p) / (d d_ff)) for both matrices
/// (= sqrt((1-p)/2)/d at d_ff = 4d).
template <class T>
T dslm_paper_ffn_sigma(int d, int d_ff, T p) {
    using std::sqrt;
    return sqrt(sqrt(T(2) * (T(1) - p) / (T(d) * T(d_ff))));
}

/// Attention V and output projection: sigma^2 = sqrt((1 - p)/r)/d, r the layer's input
/// correlation.
template <class T>
T dslm_paper_attention_sigma(int d, T r, T p) {
    using std::sqrt;
    detail::require_positive("dslm_paper_attention_sigma", "r", r);
    return sqrt(sqrt((T(1) - p) / r) / T(d));
}

}  // namespace sigprop
