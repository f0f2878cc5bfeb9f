#pragma once
// Whole-model Monte-Carlo: a real N-layer transformer built from a transformer_spec<double>,
// run forward and backward (hand-written) on sampled inputs and incoming gradients, with
// the moments of the residual stream and of its gradient measured at every residual
// boundary and the squared Frobenius norm of every weight matrix's gradient per layer.
//
// The model (no biases, LayerNorm gain 1 / bias 0 / epsilon 0, as the component models):
//   Pre-LN block:   y = lambda x + beta D(F(LN(x)))
//   Post-LN block:  y = LN(lambda x + beta D(F(x)))
//   no-LN block:    y = lambda x + beta D(F(x))          (norm_placement::none, T-Fixup)
// with D the hidden dropout (p_hidden) and F either multi-head self-attention (bidirectional
// for the encoder, causal for the decoder; Q = a Wq, K = a Wk, V = a Wv, each d x d and
// split column-wise into `heads` heads of width d/h, attention dropout p_attention on the
// probabilities, output projection Wo) or the FFN a -> act(a W1) W2 (d -> d_ff -> d).
// A layer is an attention block then an FFN block; an optional LayerNorm follows the last
// layer. Encoder-decoder: an encoder stack (bidirectional, source_len tokens; `lambda`,
// `beta`, sigmas[0..N-1]) and its optional final LayerNorm give E; then a decoder stack
// (seq_len tokens; decoder_lambda/decoder_beta when set, sigmas[N..2N-1]) whose layers are
// causal self-attention, cross-attention (queries a Wq from the decoder stream, keys and
// values E Wk, E Wv, no mask, output projection; weights cross_q..cross_o), FFN. The
// encoder receives its gradient only through the keys and values of every cross block.
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
// measured at a boundary is dLoss/d(stream at that boundary). Encoder-decoder: the
// encoder's boundaries as above, then the decoder's (input, then per layer after the
// self-attention, cross-attention and FFN blocks, then the final norm): predict's order.
// The source is sampled like the input, from part 0 of the sequence's input stream (its
// embedding dropout from part 0xfffffff1 of the mask stream).
//
// Weight gradients: for a linear map Y = X W, dW = X^T dY; the q/k/v norms are those of
// the full d x d matrices, which equal the sum over heads of the per-head matrices' norms.
// Each sequence's loss is its own sum(Y * G): the norms are per sequence, averaged.
//
// Random streams (Philox, keyed by (seed, experiment, stream)): weight draw g uses the base
// key stream 4g, with matrix m of spec.sigmas entry l on part_key(base, 16 l + m) (m: q, k,
// v, o, ffn1, ffn2, cross_q, cross_k, cross_v, cross_o = 0..9); sequence s draws its
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

/// Per-layer mean squared Frobenius norms of the weight gradients, with standard errors
/// (the cross-attention ones are 0 outside an encoder-decoder's decoder layers).
struct weight_gradient_norms {
    measured q, k, v, o, ffn1, ffn2, cross_q, cross_k, cross_v, cross_o;
};

/// What a whole-model run measures.
struct model_measurement {
    std::vector<std::string> labels;           ///< one per boundary
    std::vector<measured_moments> forward;     ///< the residual stream at each boundary
    std::vector<measured_moments> backward;    ///< its gradient at each boundary
    std::vector<weight_gradient_norms> weights;  ///< one per spec.sigmas entry
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
    enum matrix : int { wq = 0, wk, wv, wo, w1, w2, cq, ck, cv, co, n_matrices };
    /// What a block is.
    enum class block_kind : unsigned char { attention, ffn, cross };

    struct block_state {
        // weights (attention and cross-attention: wq, wk, wv, wo; FFN: w1, w2 in slots 0, 1)
        Eigen::MatrixXd w[4];
        // forward cache
        detail_mc::ln_cache ln;      // pre: LN of the input; post: LN of the sum; none: unused
        Eigen::MatrixXd a_post;      // post-LN and no-LN: the branch input (= block input)
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
        const bool encdec = s.arch == architecture::encoder_decoder;
        const int L = s.seq_len, Ls = encdec && s.source_len > 0 ? s.source_len : s.seq_len;
        if (encdec) {
            stacks_.push_back({0, 2, 0, Ls, false, false, s.lambda, s.beta, {}});
            stacks_.push_back({2 * s.layers, 3, s.layers, L, true, true, s.decoder_lambda.value_or(s.lambda),
                               s.decoder_beta.value_or(s.beta), {}});
        } else {
            stacks_.push_back({0, 2, 0, L, s.arch == architecture::decoder, false, s.lambda, s.beta, {}});
        }
        blocks_.resize(std::size_t(encdec ? 5 * s.layers : 2 * s.layers));
    }

    static void check_spec(const transformer_spec<double>& s) {
        using sigprop::detail::format_value;
        auto fail = [](const std::string& what) { throw sigprop::invalid_argument("sigprop::transformer_mc: " + what); };
        const bool encdec = s.arch == architecture::encoder_decoder;
        if (s.layers < 1) fail("layers = " + format_value(s.layers) + " must be >= 1");
        if (s.d_model < 2) fail("d_model = " + format_value(s.d_model) + " must be >= 2");
        if (s.d_ff < 1) fail("d_ff = " + format_value(s.d_ff) + " must be >= 1");
        if (s.heads < 1 || s.d_model % s.heads != 0)
            fail("heads = " + format_value(s.heads) + " must be >= 1 and divide d_model = " + format_value(s.d_model));
        if (s.seq_len < 2) fail("seq_len = " + format_value(s.seq_len) + " must be >= 2");
        if (encdec ? (s.source_len != 0 && s.source_len < 2) : s.source_len != 0)
            fail("source_len = " + format_value(s.source_len) +
                 (encdec ? " must be 0 (= seq_len) or >= 2" : " must be 0 (only an encoder-decoder has a source)"));
        const long long want = encdec ? 2LL * s.layers : s.layers;
        if (static_cast<long long>(s.sigmas.size()) != want)
            fail("sigmas.size() = " + format_value(s.sigmas.size()) + " must equal " + format_value(want) +
                 (encdec ? " (2 * layers for an encoder-decoder)" : " (layers)"));
        for (double p : {s.p_hidden, s.p_attention, s.p_embedding})
            if (!(p >= 0 && p < 1)) fail("a dropout probability = " + format_value(p) + " is outside [0, 1)");
    }

    const transformer_spec<double>& spec() const noexcept { return s_; }

    /// Boundaries per stack: input, one per block, the final norm.
    int boundaries() const noexcept {
        int n = 0;
        for (const auto& k : stacks_) n += 1 + k.per_layer * s_.layers + (s_.final_norm ? 1 : 0);
        return n;
    }

    /// Tokens at boundary i (the encoder's source length for an encoder-decoder's encoder).
    int boundary_tokens(int i) const noexcept {
        for (const auto& k : stacks_) {
            const int n = 1 + k.per_layer * s_.layers + (s_.final_norm ? 1 : 0);
            if (i < n) return k.tokens;
            i -= n;
        }
        return 0;
    }

    /// Labels of the boundaries: input, l<i>.attn, (l<i>.cross,) l<i>.ffn (1-based),
    /// final_norm; prefixed enc. and dec. for an encoder-decoder.
    std::vector<std::string> labels() const {
        std::vector<std::string> out;
        const bool encdec = stacks_.size() == 2;
        for (std::size_t k = 0; k < stacks_.size(); ++k) {
            const std::string pre = encdec ? (k == 0 ? "enc." : "dec.") : "";
            out.push_back(pre + "input");
            for (int l = 0; l < s_.layers; ++l) {
                const std::string n = pre + "l" + std::to_string(l + 1);
                out.push_back(n + ".attn");
                if (stacks_[k].cross) out.push_back(n + ".cross");
                out.push_back(n + ".ffn");
            }
            if (s_.final_norm) out.push_back(pre + "final_norm");
        }
        return out;
    }

    /// Draws every weight matrix from the streams derived from `base`: matrix m of sigma
    /// entry i (encoder layers first) on part 16 i + m.
    void draw_weights(const stream_key& base) {
        const int d = s_.d_model, f = s_.d_ff;
        for (const auto& k : stacks_) {
            for (int l = 0; l < s_.layers; ++l) {
                const int i = k.sigma_offset + l;
                const auto& sg = s_.sigmas[std::size_t(i)];
                auto key = [&](int m) { return part_key(base, std::uint32_t(16 * i + m)); };
                const std::size_t first = std::size_t(k.first_block + k.per_layer * l);
                block_state& at = blocks_[first];
                detail_mc::fill_weights(at.w[0], d, d, sg.q, key(wq));
                detail_mc::fill_weights(at.w[1], d, d, sg.k, key(wk));
                detail_mc::fill_weights(at.w[2], d, d, sg.v, key(wv));
                detail_mc::fill_weights(at.w[3], d, d, sg.o, key(wo));
                if (k.cross) {
                    block_state& cr = blocks_[first + 1];
                    detail_mc::fill_weights(cr.w[0], d, d, sg.cross_q, key(cq));
                    detail_mc::fill_weights(cr.w[1], d, d, sg.cross_k, key(ck));
                    detail_mc::fill_weights(cr.w[2], d, d, sg.cross_v, key(cv));
                    detail_mc::fill_weights(cr.w[3], d, d, sg.cross_o, key(co));
                }
                block_state& ff = blocks_[first + std::size_t(k.per_layer - 1)];
                detail_mc::fill_weights(ff.w[0], d, f, sg.ffn1, key(w1));
                detail_mc::fill_weights(ff.w[1], f, d, sg.ffn2, key(w2));
            }
        }
    }

    /// Access to a block, e.g. to perturb a weight. Encoder or decoder-only: 2l attention
    /// of layer l, 2l + 1 its FFN. Encoder-decoder: the encoder's 2N blocks as above, then
    /// per decoder layer l: 2N + 3l self-attention, + 1 cross-attention, + 2 FFN.
    block_state& block(int i) { return blocks_.at(std::size_t(i)); }
    const block_state& block(int i) const { return blocks_.at(std::size_t(i)); }
    int block_count() const noexcept { return int(blocks_.size()); }
    /// The kind of block i and the spec.sigmas entry it uses.
    block_kind kind_of(int i) const noexcept {
        const stack_info& k = stack_of(i);
        const int part = (i - k.first_block) % k.per_layer;
        return part == 0 ? block_kind::attention : (part == k.per_layer - 1 ? block_kind::ffn : block_kind::cross);
    }
    int sigma_index(int i) const noexcept {
        const stack_info& k = stack_of(i);
        return k.sigma_offset + (i - k.first_block) / k.per_layer;
    }

    bool keep_weight_gradients{false};

    /// Samples one sequence's model input (embedding output or spec.input moments, then
    /// embedding dropout) from the input stream `in` and the mask stream `masks`. For an
    /// encoder-decoder this is the decoder's input (seq_len tokens).
    Eigen::MatrixXd sample_input(const stream_key& in, const stream_key& masks) const {
        return sample_tokens(s_.seq_len, in, embedding_mask_key(masks));
    }

    /// An encoder-decoder's source sequence (the encoder's input, source_len tokens), drawn
    /// like the input from its own parts of the same streams; forward() uses it.
    void sample_source(const stream_key& in, const stream_key& masks) {
        source = sample_tokens(stacks_.front().tokens, part_key(in, 0), part_key(masks, 0xfffffff1u));
    }

    /// Encoder-decoder only: the encoder's input (set by sample_source or directly) and,
    /// after backward(), dLoss/dSource.
    Eigen::MatrixXd source, source_gradient;

    /// Runs the model on x (L x d). on_boundary(index, stream) is called at every boundary
    /// (index 0 with the first stack's input). Dropout masks come from parts of `masks`.
    template <class F>
    Eigen::MatrixXd forward(const Eigen::MatrixXd& x0, const stream_key& masks, F&& on_boundary) {
        int bi = 0;
        if (stacks_.size() == 2) {
            enc_out_ = stack_forward(stacks_[0], source, masks, on_boundary, bi);
            return stack_forward(stacks_[1], x0, masks, on_boundary, bi);
        }
        return stack_forward(stacks_[0], x0, masks, on_boundary, bi);
    }

    /// Backward from g = dLoss/dOutput through the latest forward; on_boundary(index,
    /// gradient) is called at every boundary (last first). Returns dLoss/dInput (for an
    /// encoder-decoder the decoder's; the source's is left in source_gradient: it is the
    /// gradient that reaches the encoder output through every cross-attention block's keys
    /// and values, taken back through the encoder). The squared norms of the weight
    /// gradients are left in block(i).gnorm (and the matrices in block(i).gw when
    /// keep_weight_gradients).
    template <class F>
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g, F&& on_boundary) {
        int bi = boundaries();
        if (stacks_.size() == 2) {
            Eigen::MatrixXd d_enc = Eigen::MatrixXd::Zero(enc_out_.rows(), enc_out_.cols());
            Eigen::MatrixXd dx = stack_backward(stacks_[1], g, on_boundary, bi, &d_enc);
            source_gradient = stack_backward(stacks_[0], d_enc, on_boundary, bi, nullptr);
            return dx;
        }
        return stack_backward(stacks_[0], g, on_boundary, bi, nullptr);
    }

private:
    struct stack_info {
        int first_block;   ///< index of its first block in blocks_
        int per_layer;     ///< 2 (attention, FFN) or 3 (attention, cross, FFN)
        int sigma_offset;  ///< spec.sigmas index of its first layer
        int tokens;
        bool causal;
        bool cross;
        double lambda, beta;
        detail_mc::ln_cache final_ln;
    };

    const stack_info& stack_of(int i) const noexcept {
        return stacks_.size() == 2 && i >= stacks_[1].first_block ? stacks_[1] : stacks_[0];
    }

    static stream_key embedding_mask_key(const stream_key& masks) { return part_key(masks, 0xfffffff0u); }

    Eigen::MatrixXd sample_tokens(int tokens, const stream_key& in, const stream_key& emb_mask) const {
        Eigen::MatrixXd x(tokens, s_.d_model);
        normal_sequence rng(in);
        if (s_.embed) {
            const signal<double> m = sigprop::forward(*s_.embed);
            sample_signal(x, m, rng);
            Eigen::MatrixXd drop;
            detail_mc::fill_dropout(drop, x.rows(), x.cols(), s_.p_embedding, emb_mask);
            if (drop.size() != 0) x = x.cwiseProduct(drop);
        } else {
            sample_signal(x, s_.input, rng);
        }
        return x;
    }

    // Mask parts of sigma entry i: hidden dropout 16 i + 8 (attention), + 9 (FFN), + 11
    // (cross); attention probabilities 16 i + 10 (self) and + 12 (cross), head h adding
    // 0x10000 h.
    template <class F>
    Eigen::MatrixXd stack_forward(stack_info& k, const Eigen::MatrixXd& x0, const stream_key& masks, F& on_boundary,
                                  int& bi) {
        Eigen::MatrixXd x = x0;
        on_boundary(bi++, x);
        const bool pre = s_.norm == norm_placement::pre;
        for (int l = 0; l < s_.layers; ++l) {
            const int i = k.sigma_offset + l;
            for (int part = 0; part < k.per_layer; ++part) {
                const int bidx = k.first_block + k.per_layer * l + part;
                block_state& b = blocks_[std::size_t(bidx)];
                const block_kind kind = kind_of(bidx);
                const Eigen::MatrixXd* a = &x;
                if (pre) {
                    b.ln.forward(x);
                    a = &b.ln.y;
                } else {
                    b.a_post = x;
                    a = &b.a_post;
                }
                Eigen::MatrixXd fout;
                std::uint32_t hidden_part = 9;
                if (kind == block_kind::attention) {
                    fout = attention_forward(b, *a, *a, k.causal, part_key(masks, std::uint32_t(16 * i + 10)));
                    hidden_part = 8;
                } else if (kind == block_kind::cross) {
                    fout = attention_forward(b, *a, enc_out_, false, part_key(masks, std::uint32_t(16 * i + 12)));
                    hidden_part = 11;
                } else {
                    fout = ffn_forward(b, *a);
                }
                detail_mc::fill_dropout(b.drop, fout.rows(), fout.cols(), s_.p_hidden,
                                        part_key(masks, std::uint32_t(16 * i) + hidden_part));
                if (b.drop.size() != 0) fout = fout.cwiseProduct(b.drop);
                Eigen::MatrixXd sum = k.lambda * x + k.beta * fout;
                if (s_.norm == norm_placement::post) {
                    b.ln.forward(sum);
                    x = b.ln.y;
                } else {
                    x = std::move(sum);
                }
                on_boundary(bi++, x);
            }
        }
        if (s_.final_norm) {
            k.final_ln.forward(x);
            x = k.final_ln.y;
            on_boundary(bi++, x);
        }
        return x;
    }

    template <class F>
    Eigen::MatrixXd stack_backward(const stack_info& k, const Eigen::MatrixXd& g, F& on_boundary, int& bi,
                                   Eigen::MatrixXd* d_enc) {
        Eigen::MatrixXd dy = g;
        if (s_.final_norm) {
            on_boundary(--bi, dy);
            dy = k.final_ln.backward(dy);
        }
        const bool pre = s_.norm == norm_placement::pre;
        for (int l = s_.layers - 1; l >= 0; --l) {
            for (int part = k.per_layer - 1; part >= 0; --part) {
                on_boundary(--bi, dy);
                const int bidx = k.first_block + k.per_layer * l + part;
                block_state& b = blocks_[std::size_t(bidx)];
                const block_kind kind = kind_of(bidx);
                const Eigen::MatrixXd ds = s_.norm == norm_placement::post ? b.ln.backward(dy) : dy;
                Eigen::MatrixXd df = k.beta * ds;
                if (b.drop.size() != 0) df = df.cwiseProduct(b.drop);
                const Eigen::MatrixXd& a = pre ? b.ln.y : b.a_post;
                Eigen::MatrixXd da;
                if (kind == block_kind::ffn) {
                    da = ffn_backward(b, a, df);
                } else if (kind == block_kind::attention) {
                    Eigen::MatrixXd da_kv;
                    da = attention_backward(b, a, a, df, da_kv);
                    da += da_kv;
                } else {
                    Eigen::MatrixXd da_kv;
                    da = attention_backward(b, a, enc_out_, df, da_kv);
                    *d_enc += da_kv;
                }
                dy = k.lambda * ds + (pre ? b.ln.backward(da) : da);
            }
        }
        on_boundary(--bi, dy);
        return dy;
    }

    void store_grad(block_state& b, int slot, Eigen::MatrixXd&& gw) {
        b.gnorm[slot] = gw.squaredNorm();
        if (keep_weight_gradients) b.gw[slot] = std::move(gw);
    }

    // Queries from aq (Lq tokens), keys and values from akv (Lk tokens; aq itself for
    // self-attention); causal masks key j > query i.
    Eigen::MatrixXd attention_forward(block_state& b, const Eigen::MatrixXd& aq, const Eigen::MatrixXd& akv,
                                      bool causal, const stream_key& mask_key) {
        const int d = s_.d_model, H = s_.heads, dh = d / H;
        const Eigen::Index Lq = aq.rows(), Lk = akv.rows();
        const double scale = 1.0 / std::sqrt(double(dh));
        b.q.noalias() = aq * b.w[0];
        b.k.noalias() = akv * b.w[1];
        b.v.noalias() = akv * b.w[2];
        b.concat.resize(Lq, d);
        b.pt.resize(std::size_t(H));
        b.mt.resize(std::size_t(H));
        Eigen::MatrixXd at(Lk, Lq);
        for (int h = 0; h < H; ++h) {
            at.noalias() = b.k.middleCols(h * dh, dh) * b.q.middleCols(h * dh, dh).transpose();
            at *= scale;  // (key j, query i)
            if (causal)
                for (Eigen::Index i = 0; i < Lq; ++i) at.col(i).tail(Lk - 1 - i).setConstant(-std::numeric_limits<double>::infinity());
            Eigen::MatrixXd& pt = b.pt[std::size_t(h)];
            pt = ops::softmax_columns(at);
            if (causal)
                for (Eigen::Index i = 0; i < Lq; ++i) pt.col(i).tail(Lk - 1 - i).setZero();
            Eigen::MatrixXd& mt = b.mt[std::size_t(h)];
            detail_mc::fill_dropout(mt, Lk, Lq, s_.p_attention, part_key(mask_key, 0x10000u * std::uint32_t(h)));
            if (mt.size() == 0)
                b.concat.middleCols(h * dh, dh).noalias() = pt.transpose() * b.v.middleCols(h * dh, dh);
            else
                b.concat.middleCols(h * dh, dh).noalias() = pt.cwiseProduct(mt).transpose() * b.v.middleCols(h * dh, dh);
        }
        return b.concat * b.w[3];
    }

    // dConcat = df Wo^T; per head: dV = Pd^T dY_h (Pd^T is stored as pd = pt * mt), dP =
    // (dY_h V^T) * mask, dA = softmax backward, dQ = dA K / sqrt(dh), dK = dA^T Q / sqrt(dh);
    // returns daq = dQ Wq^T and leaves dakv = dK Wk^T + dV Wv^T; dW = a^T d(Q|K|V),
    // dWo = concat^T df.
    Eigen::MatrixXd attention_backward(block_state& b, const Eigen::MatrixXd& aq, const Eigen::MatrixXd& akv,
                                       const Eigen::MatrixXd& df, Eigen::MatrixXd& dakv) {
        const int d = s_.d_model, H = s_.heads, dh = d / H;
        const Eigen::Index Lq = aq.rows(), Lk = akv.rows();
        const double scale = 1.0 / std::sqrt(double(dh));
        store_grad(b, 3, b.concat.transpose() * df);
        const Eigen::MatrixXd dc = df * b.w[3].transpose();
        Eigen::MatrixXd dq(Lq, d), dk(Lk, d), dv(Lk, d);
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
        store_grad(b, 0, aq.transpose() * dq);
        store_grad(b, 1, akv.transpose() * dk);
        store_grad(b, 2, akv.transpose() * dv);
        dakv.noalias() = dk * b.w[1].transpose();
        dakv.noalias() += dv * b.w[2].transpose();
        return dq * b.w[0].transpose();
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
    std::vector<stack_info> stacks_;  ///< the encoder (or only) stack, then the decoder
    std::vector<block_state> blocks_;
    Eigen::MatrixXd enc_out_;  ///< an encoder-decoder's encoder output (keys and values of every cross block)
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
    const transformer_mc shape(spec);
    const int B = shape.boundaries();
    const int L = spec.seq_len;
    const bool encdec = spec.arch == architecture::encoder_decoder;
    const int NW = int(spec.sigmas.size());  // weight-norm rows: one per spec.sigmas entry
    constexpr int F = 10;                    // q, k, v, o, ffn1, ffn2, cross_q, cross_k, cross_v, cross_o

    // Per jackknife block: its own accumulators (only slot `block` used) and weight-norm sums.
    struct block_result {
        std::vector<moment_accumulator> fwd, bwd;
        std::vector<double> wsum;  // NW x F
        double count{0};
    };
    std::vector<block_result> res(static_cast<std::size_t>(blocks));

    auto run_block = [&](transformer_mc& m, int b) {
        block_result& r = res[std::size_t(b)];
        r.fwd.clear();
        r.bwd.clear();
        for (int i = 0; i < B; ++i) {
            r.fwd.emplace_back(m.boundary_tokens(i), blocks);
            r.bwd.emplace_back(m.boundary_tokens(i), blocks);
        }
        r.wsum.assign(std::size_t(F * NW), 0.0);
        Eigen::MatrixXd g(L, spec.d_model);
        for (int grp = b; grp < groups; grp += blocks) {
            m.draw_weights(stream_key{o.seed, o.experiment, 4u * std::uint32_t(grp)});
            for (int s = grp * spd; s < std::min(o.sequences, (grp + 1) * spd); ++s) {
                const stream_key in{o.seed, o.experiment, 4u * std::uint32_t(s) + 1};
                const stream_key gk{o.seed, o.experiment, 4u * std::uint32_t(s) + 2};
                const stream_key mk{o.seed, o.experiment, 4u * std::uint32_t(s) + 3};
                const Eigen::MatrixXd x = m.sample_input(in, mk);
                if (encdec) m.sample_source(in, mk);
                m.forward(x, mk, [&](int i, const Eigen::MatrixXd& v) { r.fwd[std::size_t(i)].add(v, b); });
                normal_sequence grng(gk);
                sample_gradient(g, spec.output_gradient, grng);
                m.backward(g, [&](int i, const Eigen::MatrixXd& v) { r.bwd[std::size_t(i)].add(v, b); });
                for (int k = 0; k < m.block_count(); ++k) {
                    const auto& bs = m.block(k);
                    double* w = &r.wsum[std::size_t(F * m.sigma_index(k))];
                    switch (m.kind_of(k)) {
                        case transformer_mc::block_kind::attention:
                            for (int j = 0; j < 4; ++j) w[j] += bs.gnorm[j];
                            break;
                        case transformer_mc::block_kind::ffn:
                            w[4] += bs.gnorm[0];
                            w[5] += bs.gnorm[1];
                            break;
                        case transformer_mc::block_kind::cross:
                            for (int j = 0; j < 4; ++j) w[6 + j] += bs.gnorm[j];
                            break;
                    }
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
    out.labels = shape.labels();
    out.sequences = o.sequences;
    out.blocks = blocks;
    for (int i = 0; i < B; ++i) {
        moment_accumulator f(shape.boundary_tokens(i), blocks), g(shape.boundary_tokens(i), blocks);
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
    for (int l = 0; l < NW; ++l) {
        measured q[F];
        for (int j = 0; j < F; ++j) {
            double total = 0;
            for (const auto& r : res) total += r.wsum[std::size_t(F * l + j)];
            const double full = total / total_n;
            std::vector<double> leave;
            for (const auto& r : res)
                if (r.count > 0) leave.push_back((total - r.wsum[std::size_t(F * l + j)]) / (total_n - r.count));
            const double gcount = double(leave.size());
            double avg = 0;
            for (double v : leave) avg += v;
            avg /= gcount;
            double ss = 0;
            for (double v : leave) ss += (v - avg) * (v - avg);
            q[j] = {full, std::sqrt((gcount - 1) / gcount * ss)};
        }
        out.weights.push_back({q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8], q[9]});
    }
    return out;
}

}  // namespace sigprop::validation
