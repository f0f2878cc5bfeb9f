#pragma once
// The device buffers of one batch, shared by every batched experiment, and the batched
// form of sample_equicorrelated. The buffers only grow and are reused from experiment to
// experiment, so a sweep holds one batch's worth at most.
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include <thrust/device_vector.h>

#include "sigprop/validation/batched/reduce.hpp"
#include "sigprop/validation/batched/streams.hpp"

namespace sigprop::validation::batched {

template <class T>
struct workspace {
    thrust::device_vector<T> x, w, qkv, p, d, y, g, dqkv, dx, slope;
    thrust::device_vector<double> column_shared;  // per (sequence, column): z0 or the column sum
    thrust::device_vector<double> row_scale;      // LayerNorm: 1 / s per (sequence, token)
    sums_scratch sums;

    std::size_t bytes() const {
        std::size_t n = 0;
        for (const auto* v : {&x, &w, &qkv, &p, &d, &y, &g, &dqkv, &dx, &slope}) n += v->capacity() * sizeof(T);
        for (const auto* v : {&column_shared, &row_scale, &sums.sum, &sums.sq, &sums.x2, &sums.s2, &sums.t})
            n += v->capacity() * sizeof(double);
        return n;
    }
};

namespace detail {

template <class T>
T* sized(thrust::device_vector<T>& v, std::uint64_t n) {
    v.resize(n);
    return thrust::raw_pointer_cast(v.data());
}

/// sample_equicorrelated for a whole batch (same numbers, same checks).
template <class T>
void fill_equicorrelated(T* out, stream_base b, stream_kind kind, int sequences, int tokens, int width,
                         double mean, double var, double corr, thrust::device_vector<double>& colsum) {
    if (corr < -1.0 / double(tokens - 1) - 1e-15)
        throw std::invalid_argument("sample_equicorrelated: corr below -1/(L-1)");
    const auto q = coefficients(mean, var, corr, tokens);
    const std::uint64_t S = std::uint64_t(sequences);
    double* shared = sized(colsum, S * std::uint64_t(width));
    for_each_index(S * std::uint64_t(width), column_shared{b, kind, tokens, width, q.negative, shared});
    for_each_index(S * std::uint64_t(tokens) * std::uint64_t(width),
                   equicorrelated_fill<T>{b, kind, tokens, width, q, shared, out});
}

}  // namespace detail

}  // namespace sigprop::validation::batched
