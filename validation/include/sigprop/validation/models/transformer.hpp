#pragma once
// Whole-model Monte-Carlo: a real N-layer transformer built from a transformer_spec<double>,
// run forward and backward (hand-written) on sampled inputs and incoming gradients, with
// the moments of the residual stream and of its gradient measured at every residual
// boundary and the squared Frobenius norm of every weight matrix's gradient per layer.
//
// The model (no biases, LayerNorm gain 1 / bias 0 / epsilon 0, as the component models):
//   Pre-LN block:   y = lambda x + beta D(F(LN(x)))
//   Post-LN block:  y = LN(lambda x + beta D(F(x)))
// with D the hidden dropout (p_hidden) and F either multi-head self-attention (bidirectional
// for the encoder, causal for the decoder; Q = a Wq, K = a Wk, V = a Wv, each d x d and
// split column-wise into `heads` heads of width d/h, attention dropout p_attention on the
// probabilities, output projection Wo) or the FFN a -> act(a W1) W2 (d -> d_ff -> d).
// A layer is an attention block then an FFN block; an optional LayerNorm follows the last
// layer. Encoder-decoder (cross-attention) models are not built here: they are rejected.
//
// Input: a sample of the moments in spec.input (equicorrelated Gaussian, as the component
// validator samples). When spec.embed is set, the embedding's output is sampled instead as
// an equicorrelated Gaussian with the embedding's closed-form moments (mean 0, the tables'
// summed variance, their correlation): the lookup itself is not simulated, which is exact
// for the first two moments but not for the law. Embedding dropout (p_embedding) is then
// applied for real. The loss is sum(Y * G) with G sampled from spec.output_gradient.
//
// Boundaries (where moments are measured), in order: 0 = model input (after embedding
// dropout), then per layer l (0-based) 2l + 1 = after the attention block and 2l + 2 = after
// the FFN block, then, with final_norm, one more after the final LayerNorm. The gradient
// measured at a boundary is dLoss/d(stream at that boundary).
//
// Weight gradients: for a linear map Y = X W, dW = X^T dY; the q/k/v norms are those of
// the full d x d matrices, which equal the sum over heads of the per-head matrices' norms.
// Each sequence's loss is its own sum(Y * G): the norms are per sequence, averaged.
//
// Random streams (Philox, keyed by (seed, experiment, stream)): weight draw g uses the base
// key stream 4g, with matrix m of layer l on part_key(base, 16 l + m); sequence s draws its
// input from stream 4s + 1, its gradient from 4s + 2, and its dropout masks from parts of
// stream 4s + 3. Sequences 0..S-1 are cut into groups of `sequences_per_draw` consecutive
// sequences that share one weight draw; group g belongs to jackknife block g % blocks, so
// blocks never share weights and stay independent. Each block is accumulated by one thread
// in sequence order and blocks are merged into disjoint slots, so results are bit-identical
// for any number of threads.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <Eigen/Core>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "sigprop/components/embedding.hpp"
#include "sigprop/core/errors.hpp"
#include "sigprop/models/spec.hpp"
#include "sigprop/validation/compose.hpp"
#include "sigprop/validation/estimator.hpp"
#include "sigprop/validation/ops/layer_norm.hpp"
#include "sigprop/validation/ops/softmax.hpp"
#include "sigprop/validation/philox.hpp"
#include "sigprop/validation/sampler.hpp"

namespace sigprop::validation {

/// How much to sample for a whole-model run.
struct model_run_options {
    std::uint64_t seed{20240311};
    std::uint32_t experiment{0};
    int sequences{32};
    int blocks{16};              ///< jackknife blocks (at most the number of weight draws)
    int sequences_per_draw{1};   ///< consecutive sequences sharing one weight draw
    int threads{0};              ///< OpenMP threads; 0 = the runtime's default
};

/// Per-layer mean squared Frobenius norms of the weight gradients, with standard errors.
struct weight_gradient_norms {
    measured q, k, v, o, ffn1, ffn2;
};

/// What a whole-model run measures.
struct model_measurement {
    std::vector<std::string> labels;           ///< one per boundary
    std::vector<measured_moments> forward;     ///< the residual stream at each boundary
    std::vector<measured_moments> backward;    ///< its gradient at each boundary
    std::vector<weight_gradient_norms> weights;  ///< one per layer
    int sequences{0};
    int blocks{0};
};

namespace detail_mc {

/// Row-wise LayerNorm with its cache: y = (x - mean) / s per token.
struct ln_cache {
    Eigen::MatrixXd y;
    Eigen::ArrayXd inv_s;

    void forward(const Eigen::MatrixXd& x) { ops::layer_norm_rows(x, y, inv_s); }
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const { return ops::layer_norm_rows_backward(y, inv_s, g); }
};

/// Dropout scale m / (1 - p) from uniforms 0.. of a stream (kept when u > p); empty for p = 0.
inline void fill_dropout(Eigen::MatrixXd& scale, Eigen::Index rows, Eigen::Index cols, double p,
                         const stream_key& key) {
    if (p == 0) {
        scale.resize(0, 0);
        return;
    }
    scale.resize(rows, cols);
    philox_stream(key).fill_uniform(scale.data(), std::uint64_t(scale.size()));
    const double keep = 1.0 / (1.0 - p);
    scale = scale.unaryExpr([p, keep](double u) { return u > p ? keep : 0.0; });
}

inline void fill_weights(Eigen::MatrixXd& w, Eigen::Index rows, Eigen::Index cols, double sigma,
                         const stream_key& key) {
    w.resize(rows, cols);
    normal_sequence(key).fill(w.data(), std::uint64_t(w.size()));
    w *= sigma;
}

}  // namespace detail_mc

/// One real model: its weights (one draw) and the cache of its latest forward pass.
class transformer_mc {
public:
    /// Weight-matrix indices within a layer (also the part indices of their streams).
    enum matrix : int { wq = 0, wk, wv, wo, w1, w2, n_matrices };

    struct block_state {
        // weights (attention: wq, wk, wv, wo; FFN: w1, w2 in slots 0, 1)
        Eigen::MatrixXd w[4];
        // forward cache
        detail_mc::ln_cache ln;      // pre: LN of the input; post: LN of the sum
        Eigen::MatrixXd a_post;      // post-LN: the branch input (= block input)
        Eigen::MatrixXd q, k, v, concat;         // attention
        std::vector<Eigen::MatrixXd> pt, mt;     // per head: P^T and its dropout scale
        Eigen::MatrixXd z, slope;                // FFN: act(a W1) and act'(a W1)
        Eigen::MatrixXd drop;                    // hidden dropout scale (empty when p = 0)
        // gradients of the weights (kept only when keep_weight_gradients)
        Eigen::MatrixXd gw[4];
        double gnorm[4]{0, 0, 0, 0};
    };

    explicit transformer_mc(const transformer_spec<double>& s) : s_(s) {
        check_spec(s);
        blocks_.resize(std::size_t(2 * s.layers));
    }

    static void check_spec(const transformer_spec<double>& s) {
        using sigprop::detail::format_value;
        auto fail = [](const std::string& what) { throw sigprop::invalid_argument("sigprop::transformer_mc: " + what); };
        if (s.arch == architecture::encoder_decoder)
            fail("arch = encoder_decoder is not supported by the whole-model Monte-Carlo (encoder or decoder only)");
        if (s.layers < 1) fail("layers = " + format_value(s.layers) + " must be >= 1");
        if (s.d_model < 2) fail("d_model = " + format_value(s.d_model) + " must be >= 2");
        if (s.d_ff < 1) fail("d_ff = " + format_value(s.d_ff) + " must be >= 1");
        if (s.heads < 1 || s.d_model % s.heads != 0)
            fail("heads = " + format_value(s.heads) + " must be >= 1 and divide d_model = " + format_value(s.d_model));
        if (s.seq_len < 2) fail("seq_len = " + format_value(s.seq_len) + " must be >= 2");
        if (int(s.sigmas.size()) != s.layers)
            fail("sigmas.size() = " + format_value(s.sigmas.size()) + " must equal layers = " + format_value(s.layers));
        for (double p : {s.p_hidden, s.p_attention, s.p_embedding})
            if (!(p >= 0 && p < 1)) fail("a dropout probability = " + format_value(p) + " is outside [0, 1)");
    }

    const transformer_spec<double>& spec() const noexcept { return s_; }
    int boundaries() const noexcept { return 2 * s_.layers + 1 + (s_.final_norm ? 1 : 0); }

    /// Labels of the boundaries: input, l<i>.attn, l<i>.ffn (1-based), final_norm.
    std::vector<std::string> labels() const {
        std::vector<std::string> out{"input"};
        for (int l = 0; l < s_.layers; ++l) {
            out.push_back("l" + std::to_string(l + 1) + ".attn");
            out.push_back("l" + std::to_string(l + 1) + ".ffn");
        }
        if (s_.final_norm) out.push_back("final_norm");
        return out;
    }

    /// Draws every weight matrix from the streams derived from `base`.
    void draw_weights(const stream_key& base) {
        const int d = s_.d_model, f = s_.d_ff;
        for (int l = 0; l < s_.layers; ++l) {
            const auto& sg = s_.sigmas[std::size_t(l)];
            auto key = [&](int m) { return part_key(base, std::uint32_t(16 * l + m)); };
            block_state& at = blocks_[std::size_t(2 * l)];
            detail_mc::fill_weights(at.w[0], d, d, sg.q, key(wq));
            detail_mc::fill_weights(at.w[1], d, d, sg.k, key(wk));
            detail_mc::fill_weights(at.w[2], d, d, sg.v, key(wv));
            detail_mc::fill_weights(at.w[3], d, d, sg.o, key(wo));
            block_state& ff = blocks_[std::size_t(2 * l + 1)];
            detail_mc::fill_weights(ff.w[0], d, f, sg.ffn1, key(w1));
            detail_mc::fill_weights(ff.w[1], f, d, sg.ffn2, key(w2));
        }
    }

    /// Access to a block (2l: attention of layer l, 2l + 1: its FFN), e.g. to perturb a weight.
    block_state& block(int i) { return blocks_.at(std::size_t(i)); }
    const block_state& block(int i) const { return blocks_.at(std::size_t(i)); }

    bool keep_weight_gradients{false};

    /// Samples one sequence's model input (embedding output or spec.input moments, then
    /// embedding dropout) from the input stream `in` and the mask stream `masks`.
    Eigen::MatrixXd sample_input(const stream_key& in, const stream_key& masks) const {
        Eigen::MatrixXd x(s_.seq_len, s_.d_model);
        normal_sequence rng(in);
        if (s_.embed) {
            const signal<double> m = sigprop::forward(*s_.embed);
            sample_signal(x, m, rng);
            Eigen::MatrixXd drop;
            detail_mc::fill_dropout(drop, x.rows(), x.cols(), s_.p_embedding, embedding_mask_key(masks));
            if (drop.size() != 0) x = x.cwiseProduct(drop);
        } else {
            sample_signal(x, s_.input, rng);
        }
        return x;
    }

    /// Runs the model on x (L x d). on_boundary(index, stream) is called at every boundary
    /// (index 0 with x itself). Dropout masks come from parts of `masks`.
    template <class F>
    Eigen::MatrixXd forward(const Eigen::MatrixXd& x0, const stream_key& masks, F&& on_boundary) {
        Eigen::MatrixXd x = x0;
        on_boundary(0, x);
        for (int l = 0; l < s_.layers; ++l) {
            for (int part = 0; part < 2; ++part) {
                block_state& b = blocks_[std::size_t(2 * l + part)];
                const bool pre = s_.norm == norm_placement::pre;
                const Eigen::MatrixXd* a = &x;
                if (pre) {
                    b.ln.forward(x);
                    a = &b.ln.y;
                } else {
                    b.a_post = x;
                    a = &b.a_post;
                }
                Eigen::MatrixXd fout = part == 0 ? attention_forward(b, *a, masks, l) : ffn_forward(b, *a);
                detail_mc::fill_dropout(b.drop, fout.rows(), fout.cols(), s_.p_hidden,
                                        part_key(masks, std::uint32_t(16 * l + (part == 0 ? 8 : 9))));
                if (b.drop.size() != 0) fout = fout.cwiseProduct(b.drop);
                Eigen::MatrixXd sum = s_.lambda * x + s_.beta * fout;
                if (pre) {
                    x = std::move(sum);
                } else {
                    b.ln.forward(sum);
                    x = b.ln.y;
                }
                on_boundary(2 * l + 1 + part, x);
            }
        }
        if (s_.final_norm) {
            final_ln_.forward(x);
            x = final_ln_.y;
            on_boundary(2 * s_.layers + 1, x);
        }
        return x;
    }

    /// Backward from g = dLoss/dOutput through the latest forward; on_boundary(index,
    /// gradient) is called at every boundary (last first). Returns dLoss/dInput. The
    /// squared norms of the weight gradients are left in block(i).gnorm (and the
    /// matrices in block(i).gw when keep_weight_gradients).
    template <class F>
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g, F&& on_boundary) {
        Eigen::MatrixXd dy = g;
        if (s_.final_norm) {
            on_boundary(2 * s_.layers + 1, dy);
            dy = final_ln_.backward(dy);
        }
        const bool pre = s_.norm == norm_placement::pre;
        for (int l = s_.layers - 1; l >= 0; --l) {
            for (int part = 1; part >= 0; --part) {
                on_boundary(2 * l + 1 + part, dy);
                block_state& b = blocks_[std::size_t(2 * l + part)];
                const Eigen::MatrixXd ds = pre ? dy : b.ln.backward(dy);
                Eigen::MatrixXd df = s_.beta * ds;
                if (b.drop.size() != 0) df = df.cwiseProduct(b.drop);
                const Eigen::MatrixXd& a = pre ? b.ln.y : b.a_post;
                const Eigen::MatrixXd da = part == 0 ? attention_backward(b, a, df) : ffn_backward(b, a, df);
                dy = s_.lambda * ds + (pre ? b.ln.backward(da) : da);
            }
        }
        on_boundary(0, dy);
        return dy;
    }

private:
    static stream_key embedding_mask_key(const stream_key& masks) { return part_key(masks, 0xfffffff0u); }

    void store_grad(block_state& b, int slot, Eigen::MatrixXd&& gw) {
        b.gnorm[slot] = gw.squaredNorm();
        if (keep_weight_gradients) b.gw[slot] = std::move(gw);
    }

    Eigen::MatrixXd attention_forward(block_state& b, const Eigen::MatrixXd& a, const stream_key& masks, int l) {
        const int d = s_.d_model, H = s_.heads, dh = d / H;
        const Eigen::Index L = a.rows();
        const double scale = 1.0 / std::sqrt(double(dh));
        const bool causal = s_.arch == architecture::decoder;
        b.q.noalias() = a * b.w[0];
        b.k.noalias() = a * b.w[1];
        b.v.noalias() = a * b.w[2];
        b.concat.resize(L, d);
        b.pt.resize(std::size_t(H));
        b.mt.resize(std::size_t(H));
        Eigen::MatrixXd at(L, L);
        for (int h = 0; h < H; ++h) {
            at.noalias() = b.k.middleCols(h * dh, dh) * b.q.middleCols(h * dh, dh).transpose();
            at *= scale;  // (key j, query i)
            if (causal)
                for (Eigen::Index i = 0; i < L; ++i) at.col(i).tail(L - 1 - i).setConstant(-std::numeric_limits<double>::infinity());
            Eigen::MatrixXd& pt = b.pt[std::size_t(h)];
            pt = ops::softmax_columns(at);
            if (causal)
                for (Eigen::Index i = 0; i < L; ++i) pt.col(i).tail(L - 1 - i).setZero();
            Eigen::MatrixXd& mt = b.mt[std::size_t(h)];
            detail_mc::fill_dropout(mt, L, L, s_.p_attention, part_key(masks, std::uint32_t(16 * l + 10 + 0) + 0x10000u * std::uint32_t(h)));
            if (mt.size() == 0)
                b.concat.middleCols(h * dh, dh).noalias() = pt.transpose() * b.v.middleCols(h * dh, dh);
            else
                b.concat.middleCols(h * dh, dh).noalias() = pt.cwiseProduct(mt).transpose() * b.v.middleCols(h * dh, dh);
        }
        return b.concat * b.w[3];
    }

    // dConcat = df Wo^T; per head: dV = Pd^T dY_h (Pd^T is stored as pd = pt * mt), dP =
    // (dY_h V^T) * mask, dA = softmax backward, dQ = dA K / sqrt(dh), dK = dA^T Q / sqrt(dh);
    // da = dQ Wq^T + dK Wk^T + dV Wv^T; dW = a^T d(Q|K|V), dWo = concat^T df.
    Eigen::MatrixXd attention_backward(block_state& b, const Eigen::MatrixXd& a, const Eigen::MatrixXd& df) {
        const int d = s_.d_model, H = s_.heads, dh = d / H;
        const Eigen::Index L = a.rows();
        const double scale = 1.0 / std::sqrt(double(dh));
        store_grad(b, 3, b.concat.transpose() * df);
        const Eigen::MatrixXd dc = df * b.w[3].transpose();
        Eigen::MatrixXd dq(L, d), dk(L, d), dv(L, d);
        for (int h = 0; h < H; ++h) {
            const Eigen::MatrixXd& pt = b.pt[std::size_t(h)];
            const Eigen::MatrixXd& mt = b.mt[std::size_t(h)];
            const auto gh = dc.middleCols(h * dh, dh);
            Eigen::MatrixXd dpt = b.v.middleCols(h * dh, dh) * gh.transpose();
            if (mt.size() == 0) {
                dv.middleCols(h * dh, dh).noalias() = pt * gh;
            } else {
                dv.middleCols(h * dh, dh).noalias() = pt.cwiseProduct(mt) * gh;
                dpt = dpt.cwiseProduct(mt);
            }
            const Eigen::MatrixXd dat = ops::softmax_columns_backward(pt, dpt);
            dq.middleCols(h * dh, dh).noalias() = (dat.transpose() * b.k.middleCols(h * dh, dh)) * scale;
            dk.middleCols(h * dh, dh).noalias() = (dat * b.q.middleCols(h * dh, dh)) * scale;
        }
        store_grad(b, 0, a.transpose() * dq);
        store_grad(b, 1, a.transpose() * dk);
        store_grad(b, 2, a.transpose() * dv);
        Eigen::MatrixXd da = dq * b.w[0].transpose();
        da.noalias() += dk * b.w[1].transpose();
        da.noalias() += dv * b.w[2].transpose();
        return da;
    }

    Eigen::MatrixXd ffn_forward(block_state& b, const Eigen::MatrixXd& a) {
        const Eigen::MatrixXd h1 = a * b.w[0];
        if (s_.act == activation::relu) {
            b.z = h1.cwiseMax(0.0);
            b.slope = (h1.array() > 0).cast<double>().matrix();
        } else {
            // GeLU, exact erf form: x Phi(x); derivative Phi(x) + x phi(x).
            const double inv_sqrt2 = 1.0 / std::sqrt(2.0), inv_sqrt2pi = 1.0 / std::sqrt(2.0 * 3.14159265358979323846);
            const Eigen::ArrayXXd cdf = h1.array().unaryExpr([inv_sqrt2](double v) { return 0.5 * std::erfc(-v * inv_sqrt2); });
            b.slope = (cdf + h1.array() * (-0.5 * h1.array().square()).exp() * inv_sqrt2pi).matrix();
            b.z = (h1.array() * cdf).matrix();
        }
        return b.z * b.w[1];
    }

    Eigen::MatrixXd ffn_backward(block_state& b, const Eigen::MatrixXd& a, const Eigen::MatrixXd& df) {
        store_grad(b, 1, b.z.transpose() * df);
        const Eigen::MatrixXd dh1 = (df * b.w[1].transpose()).cwiseProduct(b.slope);
        store_grad(b, 0, a.transpose() * dh1);
        return dh1 * b.w[0].transpose();
    }

    transformer_spec<double> s_;
    std::vector<block_state> blocks_;
    detail_mc::ln_cache final_ln_;
};

/// Runs the whole-model Monte-Carlo for spec with options o.
inline model_measurement measure_model(const transformer_spec<double>& spec, const model_run_options& o) {
    transformer_mc::check_spec(spec);
    if (o.sequences < 2 || o.blocks < 2 || o.sequences_per_draw < 1)
        throw sigprop::invalid_argument("sigprop::measure_model: need sequences >= 2, blocks >= 2, sequences_per_draw >= 1");
    const int spd = o.sequences_per_draw;
    const int groups = (o.sequences + spd - 1) / spd;
    if (groups < 2) throw sigprop::invalid_argument("sigprop::measure_model: need at least two weight draws (sequences / sequences_per_draw >= 2)");
    const int blocks = std::min(o.blocks, groups);
    const int B = 2 * spec.layers + 1 + (spec.final_norm ? 1 : 0);
    const int L = spec.seq_len, N = spec.layers;

    // Per jackknife block: its own accumulators (only slot `block` used) and weight-norm sums.
    struct block_result {
        std::vector<moment_accumulator> fwd, bwd;
        std::vector<double> wsum;  // N x 6
        double count{0};
    };
    std::vector<block_result> res(static_cast<std::size_t>(blocks));

    auto run_block = [&](transformer_mc& m, int b) {
        block_result& r = res[std::size_t(b)];
        r.fwd.assign(std::size_t(B), moment_accumulator(L, blocks));
        r.bwd.assign(std::size_t(B), moment_accumulator(L, blocks));
        r.wsum.assign(std::size_t(6 * N), 0.0);
        Eigen::MatrixXd g(L, spec.d_model);
        for (int grp = b; grp < groups; grp += blocks) {
            m.draw_weights(stream_key{o.seed, o.experiment, 4u * std::uint32_t(grp)});
            for (int s = grp * spd; s < std::min(o.sequences, (grp + 1) * spd); ++s) {
                const stream_key in{o.seed, o.experiment, 4u * std::uint32_t(s) + 1};
                const stream_key gk{o.seed, o.experiment, 4u * std::uint32_t(s) + 2};
                const stream_key mk{o.seed, o.experiment, 4u * std::uint32_t(s) + 3};
                const Eigen::MatrixXd x = m.sample_input(in, mk);
                m.forward(x, mk, [&](int i, const Eigen::MatrixXd& v) { r.fwd[std::size_t(i)].add(v, b); });
                normal_sequence grng(gk);
                sample_gradient(g, spec.output_gradient, grng);
                m.backward(g, [&](int i, const Eigen::MatrixXd& v) { r.bwd[std::size_t(i)].add(v, b); });
                for (int l = 0; l < N; ++l) {
                    const auto& at = m.block(2 * l);
                    const auto& ff = m.block(2 * l + 1);
                    double* w = &r.wsum[std::size_t(6 * l)];
                    for (int j = 0; j < 4; ++j) w[j] += at.gnorm[j];
                    w[4] += ff.gnorm[0];
                    w[5] += ff.gnorm[1];
                }
                r.count += 1;
            }
        }
    };

#ifdef _OPENMP
    const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
#pragma omp parallel num_threads(threads)
    {
        transformer_mc m(spec);
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < blocks; ++b) run_block(m, b);
    }
#else
    {
        transformer_mc m(spec);
        for (int b = 0; b < blocks; ++b) run_block(m, b);
    }
#endif

    model_measurement out;
    out.labels = transformer_mc(spec).labels();
    out.sequences = o.sequences;
    out.blocks = blocks;
    for (int i = 0; i < B; ++i) {
        moment_accumulator f(L, blocks), g(L, blocks);
        for (int b = 0; b < blocks; ++b) {  // disjoint slots: the merge is exact
            f.merge(res[std::size_t(b)].fwd[std::size_t(i)]);
            g.merge(res[std::size_t(b)].bwd[std::size_t(i)]);
        }
        out.forward.push_back(f.result());
        out.backward.push_back(g.result());
    }
    // Weight norms: mean over sequences; delete-one-block jackknife standard error.
    double total_n = 0;
    for (const auto& r : res) total_n += r.count;
    for (int l = 0; l < N; ++l) {
        measured q[6];
        for (int j = 0; j < 6; ++j) {
            double total = 0;
            for (const auto& r : res) total += r.wsum[std::size_t(6 * l + j)];
            const double full = total / total_n;
            std::vector<double> leave;
            for (const auto& r : res)
                if (r.count > 0) leave.push_back((total - r.wsum[std::size_t(6 * l + j)]) / (total_n - r.count));
            const double gcount = double(leave.size());
            double avg = 0;
            for (double v : leave) avg += v;
            avg /= gcount;
            double ss = 0;
            for (double v : leave) ss += (v - avg) * (v - avg);
            q[j] = {full, std::sqrt((gcount - 1) / gcount * ss)};
        }
        out.weights.push_back({q[0], q[1], q[2], q[3], q[4], q[5]});
    }
    return out;
}

}  // namespace sigprop::validation
