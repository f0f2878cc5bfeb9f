#pragma once
// Softmax over each column of a batch (a column holds the L scores one softmax normalises)
// and its backward, one column per call: what ops/softmax.hpp computes, callable on host
// and device. The host backend maps them over the columns with Thrust; the CUDA backend
// has block-per-column kernels instead, since one thread per column would serialise the
// L-long loops and read memory with a stride of L.
#include <cmath>
#include <cstdint>

#include "sigprop/core/config.hpp"

namespace sigprop::validation::batched {

/// p = softmax(z) in place on column c, with the column maximum subtracted.
template <class T>
struct softmax_column {
    T* z;
    int L;

    SIGPROP_HD void operator()(std::uint64_t c) const {
        T* col = z + c * std::uint64_t(L);
        T m = col[0];
        for (int i = 1; i < L; ++i) m = col[i] > m ? col[i] : m;
        T sum = 0;
        for (int i = 0; i < L; ++i) {
            col[i] = std::exp(col[i] - m);
            sum += col[i];
        }
        for (int i = 0; i < L; ++i) col[i] /= sum;
    }
};

/// d = p * (d - sum(p * d)) in place on column c: dL/dz from dL/dp for p = softmax(z).
template <class T>
struct softmax_column_backward {
    const T* p;
    T* d;
    int L;

    SIGPROP_HD void operator()(std::uint64_t c) const {
        const T* pc = p + c * std::uint64_t(L);
        T* dc = d + c * std::uint64_t(L);
        T dot = 0;
        for (int i = 0; i < L; ++i) dot += pc[i] * dc[i];
        for (int i = 0; i < L; ++i) dc[i] = pc[i] * (dc[i] - dot);
    }
};

}  // namespace sigprop::validation::batched
