#pragma once
// LayerNorm over each token of a batch and its backward, one token per call: what
// ops/layer_norm.hpp computes, in the same order, callable on host and device.
//
// Why one thread per token and not one block per token (as the column softmax): the batch
// is column-major, so a token's d units lie L elements apart. A block per token would
// read each unit from a different 32-byte memory sector (8 times the traffic of the data
// in FP32). With a thread per token, the threads of a warp hold neighbouring tokens and
// read neighbouring addresses at every unit, so every read is coalesced; the d-long loop
// per thread is the price, and there are S L tokens (1e4 to 1e5 in the paper's grid) to
// keep the GPU busy. Thrust maps them on either backend, so no kernel of its own is needed.
//
// Sums are accumulated in double whatever the storage type (DESIGN.md), so only the
// rounding of the stored values differs between FP32 and double.
#include <cmath>
#include <cstdint>

#include "sigprop/core/config.hpp"

namespace sigprop::validation::batched {

/// y = (x - m) / s on token idx = sequence * L + i, m the token's mean and s^2 its biased
/// variance; stores 1 / s (the backward's cache) at inv_s[idx].
template <class T>
struct layer_norm_token {
    const T* x;
    T* y;
    double* inv_s;
    int L, d;

    SIGPROP_HD void operator()(std::uint64_t idx) const {
        const std::uint64_t Lu = std::uint64_t(L), s = idx / Lu, i = idx % Lu;
        const std::uint64_t first = s * Lu * std::uint64_t(d) + i;
        double m = 0;
        for (int k = 0; k < d; ++k) m += double(x[first + std::uint64_t(k) * Lu]);
        m /= d;
        double q = 0;
        for (int k = 0; k < d; ++k) {
            const double c = double(x[first + std::uint64_t(k) * Lu]) - m;
            q += c * c;
        }
        const double inv = 1 / sqrt(q / d);
        for (int k = 0; k < d; ++k) {
            const std::uint64_t e = first + std::uint64_t(k) * Lu;
            y[e] = T((double(x[e]) - m) * inv);
        }
        inv_s[idx] = inv;
    }
};

/// dx = (1/s) (g - mean(g) - y mean(g y)) on token idx, in place on g
/// (ops::layer_norm_rows_backward).
template <class T>
struct layer_norm_token_backward {
    const T* y;
    const double* inv_s;
    T* g;
    int L, d;

    SIGPROP_HD void operator()(std::uint64_t idx) const {
        const std::uint64_t Lu = std::uint64_t(L), s = idx / Lu, i = idx % Lu;
        const std::uint64_t first = s * Lu * std::uint64_t(d) + i;
        double mg = 0, mgy = 0;
        for (int k = 0; k < d; ++k) {
            const std::uint64_t e = first + std::uint64_t(k) * Lu;
            mg += double(g[e]);
            mgy += double(g[e]) * double(y[e]);
        }
        mg /= d;
        mgy /= d;
        for (int k = 0; k < d; ++k) {
            const std::uint64_t e = first + std::uint64_t(k) * Lu;
            g[e] = T((double(g[e]) - mg - double(y[e]) * mgy) * inv_s[idx]);
        }
    }
};

}  // namespace sigprop::validation::batched
