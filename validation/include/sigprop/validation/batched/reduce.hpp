#pragma once
// The estimator's block sums of a batch, computed where the data live. Written once with
// Thrust: nvcc runs it on the GPU, g++ with THRUST_DEVICE_SYSTEM=OMP on the CPU cores.
// Every sum is accumulated in double whatever the storage type.
#include <cstdint>

#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>

#include "sigprop/core/config.hpp"
#include "sigprop/validation/batched/job.hpp"

namespace sigprop::validation::batched {

/// Applies f to 0 .. n-1 on the device system.
template <class F>
void for_each_index(std::uint64_t n, F f) {
    thrust::for_each(thrust::device, thrust::counting_iterator<std::uint64_t>(0),
                     thrust::counting_iterator<std::uint64_t>(n), f);
}

namespace detail {

/// Sum and sum of squares of one column (contiguous, `tokens` long).
template <class T>
struct column_sums {
    const T* x;
    int tokens;
    double *sum, *sq;

    SIGPROP_HD void operator()(std::uint64_t c) const {
        const T* col = x + c * std::uint64_t(tokens);
        double s = 0, q = 0;
        for (int i = 0; i < tokens; ++i) {
            const double v = double(col[i]);
            s += v;
            q += v * v;
        }
        sum[c] = s;
        sq[c] = q;
    }
};

/// Sum of token i of sequence s over its columns; index s * tokens + i. Neighbouring
/// threads read neighbouring tokens, so the reads of a warp are contiguous.
template <class T>
struct token_sums {
    const T* x;
    int tokens, width;
    double* t;

    SIGPROP_HD void operator()(std::uint64_t idx) const {
        const std::uint64_t s = idx / std::uint64_t(tokens), i = idx % std::uint64_t(tokens);
        const T* base = x + s * std::uint64_t(tokens) * std::uint64_t(width) + i;
        double sum = 0;
        for (int k = 0; k < width; ++k) sum += double(base[std::uint64_t(k) * std::uint64_t(tokens)]);
        t[idx] = sum;
    }
};

/// Per sequence: the sum of its columns' squares and of their squared sums (a segmented
/// reduction over `width` consecutive columns; there are few sequences and short segments).
struct sequence_totals {
    const double *sum, *sq;
    int width;
    double *x2, *s2;

    SIGPROP_HD void operator()(std::uint64_t s) const {
        double a = 0, b = 0;
        for (int k = 0; k < width; ++k) {
            const std::uint64_t c = s * std::uint64_t(width) + std::uint64_t(k);
            a += sq[c];
            b += sum[c] * sum[c];
        }
        x2[s] = a;
        s2[s] = b;
    }
};

}  // namespace detail

/// Scratch space of the sums, kept between calls so that a sweep allocates once.
struct sums_scratch {
    thrust::device_vector<double> sum, sq, x2, s2, t;
};

/// The block sums of `sequences` column-major tokens x width matrices stored one after
/// the other at x.
template <class T>
sequence_sums block_sums(const T* x, int sequences, int tokens, int width, sums_scratch& w) {
    const std::uint64_t S = std::uint64_t(sequences), cols = S * std::uint64_t(width);
    w.sum.resize(cols);
    w.sq.resize(cols);
    w.x2.resize(S);
    w.s2.resize(S);
    w.t.resize(S * std::uint64_t(tokens));
    double* sum = thrust::raw_pointer_cast(w.sum.data());
    double* sq = thrust::raw_pointer_cast(w.sq.data());
    for_each_index(cols, detail::column_sums<T>{x, tokens, sum, sq});
    for_each_index(S * std::uint64_t(tokens),
                   detail::token_sums<T>{x, tokens, width, thrust::raw_pointer_cast(w.t.data())});
    for_each_index(S, detail::sequence_totals{sum, sq, width, thrust::raw_pointer_cast(w.x2.data()),
                                              thrust::raw_pointer_cast(w.s2.data())});
    sequence_sums out;
    out.tokens = tokens;
    out.columns = width;
    out.x2.resize(S);
    out.s2.resize(S);
    out.t.resize(S * std::uint64_t(tokens));
    thrust::copy(w.x2.begin(), w.x2.begin() + std::ptrdiff_t(S), out.x2.begin());
    thrust::copy(w.s2.begin(), w.s2.begin() + std::ptrdiff_t(S), out.s2.begin());
    thrust::copy(w.t.begin(), w.t.begin() + std::ptrdiff_t(out.t.size()), out.t.begin());
    return out;
}

}  // namespace sigprop::validation::batched
