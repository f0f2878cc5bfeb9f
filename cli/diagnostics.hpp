#pragma once
// What `sigprop predict` concludes from a trajectory, with the thresholds documented in
// docs/TOOL.md ("Diagnostics"). Header-only so that the tests can check the conclusions.
#include <cmath>
#include <limits>
#include <vector>

#include "sigprop/models.hpp"

namespace sigprop::cli {

/// A token correlation above this is rank collapse: the tokens' representations are
/// within ~14% (sqrt(2 (1 - r))) of each other relative to their size, so attention can
/// barely tell them apart (Noci et al. 2022; Kedia et al. 2024 use the same picture).
inline constexpr double collapse_corr = 0.99;

/// A gradient (or weight-gradient) variance ratio beyond this factor either way between the
/// first and the last layer is flagged: one order of magnitude, the point where a single
/// learning rate is already wrong for one end of the model.
inline constexpr double growth_flag = 10.0;

/// Softmax saturation. Given a query, the key-specific scores are about i.i.d. N(0, s)
/// (s: the attention_scores field `sig`). For such logits the softmax over L keys has
/// entropy ~ ln L - s/2 while s < 2 ln L, and beyond that it is dominated by the few
/// largest scores (the "frozen" phase of the random energy model): the entropy no longer
/// grows with L and the gradient through the softmax vanishes. So s > 2 ln L is entropy
/// collapse; the report also shows s itself against this bound.
inline double saturation_threshold(int L) { return 2.0 * std::log(double(L)); }

/// One row per layer, in spec.sigmas order (encoder-decoder: encoder first).
struct layer_row {
    int index{0};                 ///< 0-based, spec.sigmas order
    int layer{0};                 ///< 1-based within its stack
    stack_kind stack{stack_kind::encoder};
    signal<double> x{};           ///< the stream after the layer
    gradient<double> g{};         ///< the gradient there
    double score_var{0};          ///< key-specific score variance of its self-attention
    double weight_grad{0};        ///< sum of E||dW||^2 over the layer's matrices
};

struct diagnostics {
    signal<double> input{};       ///< the stream entering the first layer
    gradient<double> input_grad{};
    double forward_growth{1};     ///< stream variance after the last layer / at the input
    double grad_growth{1};        ///< gradient variance at the input / after the last layer
    double weight_grad_ratio{1};  ///< E||dW||^2 of the first layer / of the last
    int collapse_layer{-1};       ///< first layer (index) whose output corr > collapse_corr
    double max_score_var{0};
    int max_score_layer{-1};
    int saturated_layer{-1};      ///< first layer (index) whose score variance > 2 ln L
    double saturation_bound{0};   ///< 2 ln L of the self-attention with the most keys
    int overflow_layer{-1};       ///< trajectory::overflow_layer
    std::vector<layer_row> rows;
};

namespace detail {

/// The input of a layer's self-attention, as predict feeds it (docs/theory/models.md):
/// Pre-LN normalises the stream; Post-LN folds a nonzero mean into variance and correlation.
inline signal<double> attention_input(const transformer_spec<double>& s, const signal<double>& x) {
    if (!std::isfinite(x.var)) return {0, std::numeric_limits<double>::infinity(), x.corr};
    if (s.norm == norm_placement::pre) return sigprop::detail::forward_impl(layer_norm<double>{s.d_model}, x);
    const double m2 = x.var + x.mean * x.mean;
    return {0, m2, m2 > 0 ? (x.corr * x.var + x.mean * x.mean) / m2 : x.corr};
}

/// (d s2 sigma_q sigma_k)^2 (1 - r): attention_scores::sig of score_statistics.
inline double score_variance(int d, const signal<double>& u, double sq, double sk) {
    if (!std::isfinite(u.var)) return std::numeric_limits<double>::infinity();
    const double a = double(d) * u.var * sq * sk;
    return a * a * (1 - u.corr);
}

inline double total(const weight_grad_norms<double>& w) {
    return w.q + w.k + w.v + w.o + w.ffn1 + w.ffn2 + w.cross_q + w.cross_k + w.cross_v + w.cross_o;
}

/// a / b for growth factors: inf when only a overflowed, 1 when both did (unknown, so no
/// claim of growth; the overflow diagnostic reports it), never NaN.
inline double ratio(double a, double b) {
    const double inf = std::numeric_limits<double>::infinity();
    if (a == inf && b == inf) return 1;
    if (b == 0) return a == 0 ? 1 : inf;
    return a / b;
}

}  // namespace detail

inline diagnostics diagnose(const transformer_spec<double>& s, const trajectory<double>& tr) {
    diagnostics d;
    d.overflow_layer = tr.overflow_layer;
    const bool encdec = s.arch == architecture::encoder_decoder;
    const int n = s.layers;
    d.rows.resize(tr.weight_grads.size());
    signal<double> before{};  // the stream entering the current layer
    int last_out = -1;         // index of the last layer-output point (before a final norm)
    for (std::size_t i = 0; i < tr.points.size(); ++i) {
        const auto& p = tr.points[i];
        const int idx = p.layer + (encdec && p.stack == stack_kind::decoder ? n : 0);
        if (p.kind == boundary_kind::input) {
            before = p.x;
            if (i == 0) { d.input = p.x; d.input_grad = p.g; }
            continue;
        }
        if (p.kind == boundary_kind::final_norm) continue;
        layer_row& r = d.rows[std::size_t(idx)];
        if (p.kind == boundary_kind::attention) {
            const auto& w = s.sigmas[std::size_t(idx)];
            r.score_var = detail::score_variance(s.d_model, detail::attention_input(s, before), w.q, w.k);
        }
        if (p.kind == boundary_kind::ffn) {
            r.index = idx;
            r.layer = p.layer + 1;
            r.stack = p.stack;
            r.x = p.x;
            r.g = p.g;
            r.weight_grad = detail::total(tr.weight_grads[std::size_t(idx)]);
            before = p.x;
            last_out = int(i);
        }
    }
    const auto& last = tr.points[std::size_t(last_out)];
    d.forward_growth = detail::ratio(last.x.var, d.input.var);
    d.grad_growth = detail::ratio(d.input_grad.var, last.g.var);
    d.weight_grad_ratio = detail::ratio(d.rows.front().weight_grad, d.rows.back().weight_grad);
    const int longest = encdec ? std::max(s.seq_len, s.source_len) : s.seq_len;
    d.saturation_bound = saturation_threshold(longest);
    for (const auto& r : d.rows) {
        if (d.collapse_layer < 0 && r.x.corr > collapse_corr) d.collapse_layer = r.index;
        if (r.score_var > d.max_score_var || d.max_score_layer < 0) {
            d.max_score_var = r.score_var;
            d.max_score_layer = r.index;
        }
        const int L = (encdec && r.stack == stack_kind::encoder && s.source_len > 0) ? s.source_len : s.seq_len;
        if (d.saturated_layer < 0 && r.score_var > saturation_threshold(L)) d.saturated_layer = r.index;
    }
    return d;
}

}  // namespace sigprop::cli
