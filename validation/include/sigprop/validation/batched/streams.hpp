#pragma once
// Device-callable random fills for the batched backends. Element n of sequence s reads the
// very Philox numbers the CPU models read: the stream keys of experiment.hpp's streams_for
// and the element order of sampler.hpp and sample_weights, so a batched run reproduces a
// CPU run up to rounding. Each functor handles one element and is applied with Thrust.
#include <cmath>
#include <cstdint>

#include "sigprop/core/config.hpp"
#include "sigprop/validation/philox.hpp"

namespace sigprop::validation::batched {

/// The streams of one sequence, as streams_for numbers them.
enum class stream_kind : std::uint32_t { weights = 0, input = 1, grad = 2, masks = 3 };

/// The key shared by every stream of an experiment.
struct stream_base {
    std::uint64_t seed{0};
    std::uint32_t experiment{0};
};

SIGPROP_HD inline philox_stream stream_of(stream_base b, std::uint64_t sequence, stream_kind k) {
    return philox_stream{stream_key{b.seed, b.experiment, std::uint32_t(sequence) * 4u + std::uint32_t(k)}};
}

/// Coefficients of sample_equicorrelated: x = mean + a z + c z0 for corr >= 0 (z0 the
/// column's shared normal), x = mean + a z + c sum_i z[i] for a negative corr.
struct equicorrelated_coefficients {
    double mean{0}, a{0}, c{0};
    bool negative{false};
};

inline equicorrelated_coefficients coefficients(double mean, double var, double corr, int tokens) {
    const double s = std::sqrt(var);
    if (corr >= 0) return {mean, s * std::sqrt(1 - corr), s * std::sqrt(corr), false};
    const double L = tokens;
    const double shared = std::sqrt(std::fmax(0.0, 1 + (L - 1) * corr)) - std::sqrt(1 - corr);
    return {mean, s * std::sqrt(1 - corr), s * shared / L, true};
}

/// The part of column k of sequence s that its tokens share: the normal z0 (normal
/// tokens * width + k of the stream) for corr >= 0, the sum of the column's normals for a
/// negative corr. Index: sequence * width + column. Computed once per column so that the
/// elements do not each redraw it.
struct column_shared {
    stream_base base;
    stream_kind kind;
    int tokens, width;
    bool negative;
    double* out;

    SIGPROP_HD void operator()(std::uint64_t idx) const {
        const std::uint64_t s = idx / std::uint64_t(width), k = idx % std::uint64_t(width);
        const std::uint64_t L = std::uint64_t(tokens);
        const auto st = stream_of(base, s, kind);
        if (!negative) {
            out[idx] = st.normal(L * std::uint64_t(width) + k);
            return;
        }
        double sum = 0;
        for (std::uint64_t i = 0; i < L; ++i) sum += st.normal(k * L + i);
        out[idx] = sum;
    }
};

/// Element idx of a batch of tokens x width column-major matrices, one per sequence:
/// z is normal n of the stream (the element's column-major position), as in
/// sample_equicorrelated, and `shared` the column's column_shared value.
template <class T>
struct equicorrelated_fill {
    stream_base base;
    stream_kind kind;
    int tokens, width;
    equicorrelated_coefficients q;
    const double* shared;
    T* out;

    SIGPROP_HD void operator()(std::uint64_t idx) const {
        const std::uint64_t per = std::uint64_t(tokens) * std::uint64_t(width);
        const std::uint64_t s = idx / per, n = idx % per, k = n / std::uint64_t(tokens);
        const double z = stream_of(base, s, kind).normal(n);
        out[idx] = T(z * q.a + q.c * shared[s * std::uint64_t(width) + k] + q.mean);
    }
};

/// Weights of one sequence: `per` normals of the weight stream in a row, cut into up to
/// three consecutive matrices of `segment` elements scaled by sigma[0], sigma[1], sigma[2]
/// (attention draws Wq, Wk, Wv in this order, each d_in x d_head column-major).
template <class T>
struct weight_fill {
    stream_base base;
    std::uint64_t per, segment;
    double sigma[3];
    T* out;

    SIGPROP_HD void operator()(std::uint64_t idx) const {
        const std::uint64_t s = idx / per, n = idx % per;
        out[idx] = T(stream_of(base, s, stream_kind::weights).normal(n) * sigma[n / segment]);
    }
};

/// Inverted dropout of an L x L matrix per sequence: element n is kept (and scaled by
/// 1 / (1 - p)) when uniform n of the mask stream exceeds p, as attention_model does. The
/// mask is recomputed from its counter instead of stored, so the backward reapplies it
/// at no memory cost.
template <class T>
struct dropout_apply {
    stream_base base;
    std::uint64_t per;
    double p, keep;
    T* data;

    SIGPROP_HD void operator()(std::uint64_t idx) const {
        const std::uint64_t s = idx / per, n = idx % per;
        const bool kept = stream_of(base, s, stream_kind::masks).uniform(n) > p;
        data[idx] = kept ? T(double(data[idx]) * keep) : T(0);
    }
};

}  // namespace sigprop::validation::batched
