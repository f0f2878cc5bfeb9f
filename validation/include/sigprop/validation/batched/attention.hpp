#pragma once
// Single-head attention experiments run as one batch of sequences: the computation of
// components/attention.hpp (attention_model) with every sequence's matrices stored one
// after the other, GEMMs batched over the sequences and everything else done with Thrust.
// One source for two backends: Backend supplies the strided-batched GEMM and the column
// softmax (host_backend.hpp: Eigen + OpenMP; cuda/backend.cuh: cuBLAS + kernels).
//
// Layout (column-major, per sequence): X is L x d_in; W = [Wq Wk Wv] is d_in x 3h, which
// is the weight stream's order; QKV = X W is L x 3h; At = K Q^T / sqrt(h) and P = its
// column softmax are L x L with keys as rows and queries as columns; Y = Pd^T V is L x h.
// Backward: dV = Pd G, dPd = V G^T, dP = dPd * mask / (1 - p), dAt = softmax backward,
// dQ = dAt^T K / sqrt(h), dK = dAt Q / sqrt(h), dX = [dQ dK dV] W^T.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>

#include <thrust/device_vector.h>

#include "sigprop/validation/batched/job.hpp"
#include "sigprop/validation/batched/reduce.hpp"
#include "sigprop/validation/batched/streams.hpp"
#include "sigprop/validation/batched/workspace.hpp"

namespace sigprop::validation::batched {

/// Runs the experiment; returns the block sums of Y and of dX per sequence.
template <class Backend>
experiment_sums run(Backend& be, const attention_job& j, workspace<typename Backend::scalar>& ws) {
    using T = typename Backend::scalar;
    using detail::sized;
    if (j.L < 2 || j.d_in < 1 || j.d_head < 1 || j.sequences < 2 || !(j.p >= 0 && j.p < 1))
        throw std::invalid_argument("batched attention: need L >= 2, d_in >= 1, d_head >= 1, sequences >= 2, 0 <= p < 1");
    const int S = j.sequences, L = j.L, d = j.d_in, h = j.d_head, h3 = 3 * j.d_head;
    const std::uint64_t Lu = std::uint64_t(L), Su = std::uint64_t(S);
    const long long sx = (long long)L * d, sw = (long long)d * h3, sq = (long long)L * h3;
    const long long sp = (long long)L * L, sy = (long long)L * h;
    const stream_base base{j.seed, j.experiment};
    const double scale = 1.0 / std::sqrt(double(h));

    T* x = sized(ws.x, Su * std::uint64_t(sx));
    detail::fill_equicorrelated(x, base, stream_kind::input, S, L, d, j.m.x_mean, j.m.x_var, j.m.x_corr,
                                ws.column_shared);
    T* w = sized(ws.w, Su * std::uint64_t(sw));
    for_each_index(Su * std::uint64_t(sw),
                   weight_fill<T>{base, std::uint64_t(sw), std::uint64_t(d) * std::uint64_t(h),
                                  {j.sigma_q, j.sigma_k, j.sigma_v}, w});
    T* qkv = sized(ws.qkv, Su * std::uint64_t(sq));
    be.gemm(false, false, L, h3, d, 1.0, x, L, sx, w, d, sw, qkv, L, sq, S);
    const T* Q = qkv;
    const T* K = qkv + Lu * std::uint64_t(h);
    const T* V = qkv + 2 * Lu * std::uint64_t(h);

    T* p = sized(ws.p, Su * std::uint64_t(sp));
    be.gemm(false, true, L, L, h, scale, K, L, sq, Q, L, sq, p, L, sp, S);
    be.softmax_columns(p, L, Su * Lu);
    T* dbuf = sized(ws.d, Su * std::uint64_t(sp));
    const T* pd = p;  // P with dropout applied; P itself when p = 0 (no mask is drawn)
    const double keep = 1.0 / (1.0 - j.p);
    if (j.p > 0) {
        thrust::copy(ws.p.begin(), ws.p.begin() + std::ptrdiff_t(Su * std::uint64_t(sp)), ws.d.begin());
        for_each_index(Su * std::uint64_t(sp), dropout_apply<T>{base, std::uint64_t(sp), j.p, keep, dbuf});
        pd = dbuf;
    }
    T* y = sized(ws.y, Su * std::uint64_t(sy));
    be.gemm(true, false, L, h, L, 1.0, pd, L, sp, V, L, sq, y, L, sy, S);

    T* g = sized(ws.g, Su * std::uint64_t(sy));
    detail::fill_equicorrelated(g, base, stream_kind::grad, S, L, h, 0.0, j.m.g_var, j.m.g_corr, ws.column_shared);
    T* dqkv = sized(ws.dqkv, Su * std::uint64_t(sq));
    be.gemm(false, false, L, h, L, 1.0, pd, L, sp, g, L, sy, dqkv + 2 * Lu * std::uint64_t(h), L, sq, S);
    be.gemm(false, true, L, L, h, 1.0, V, L, sq, g, L, sy, dbuf, L, sp, S);
    if (j.p > 0) for_each_index(Su * std::uint64_t(sp), dropout_apply<T>{base, std::uint64_t(sp), j.p, keep, dbuf});
    be.softmax_columns_backward(p, dbuf, L, Su * Lu);
    be.gemm(true, false, L, h, L, scale, dbuf, L, sp, K, L, sq, dqkv, L, sq, S);
    be.gemm(false, false, L, h, L, scale, dbuf, L, sp, Q, L, sq, dqkv + Lu * std::uint64_t(h), L, sq, S);
    T* dx = sized(ws.dx, Su * std::uint64_t(sx));
    be.gemm(false, true, L, d, h3, 1.0, dqkv, L, sq, w, d, sw, dx, L, sx, S);

    return {block_sums(y, S, L, h, ws.sums), block_sums(dx, S, L, d, ws.sums)};
}

}  // namespace sigprop::validation::batched
