#pragma once
// The batched experiments of the normalising components, softmax and LayerNorm, with the
// computations of components/{softmax,layer_norm}.hpp and the same streams (input and
// gradient only: neither has weights or masks). One source for both backends, like
// batched/dense.hpp. The softmax normalises columns, which are contiguous, and uses the
// backend's column softmax (block-per-column kernels on the GPU); LayerNorm normalises
// tokens, which are strided, and is mapped per token with Thrust (batched/layer_norm.hpp
// says why).
#include <cstdint>
#include <stdexcept>

#include <thrust/copy.h>
#include <thrust/execution_policy.h>

#include "sigprop/validation/batched/job.hpp"
#include "sigprop/validation/batched/layer_norm.hpp"
#include "sigprop/validation/batched/reduce.hpp"
#include "sigprop/validation/batched/streams.hpp"
#include "sigprop/validation/batched/workspace.hpp"

namespace sigprop::validation::batched {

/// P = softmax of each column of the L x rows input; dZ = P (G - sum(P G)) per column.
template <class Backend>
experiment_sums run(Backend& be, const softmax_job& j, workspace<typename Backend::scalar>& ws) {
    using T = typename Backend::scalar;
    using detail::sized;
    if (j.L < 2 || j.rows < 1 || j.sequences < 2)
        throw std::invalid_argument("batched softmax: need L >= 2, rows >= 1, sequences >= 2");
    const std::uint64_t columns = std::uint64_t(j.sequences) * std::uint64_t(j.rows);
    const std::uint64_t n = columns * std::uint64_t(j.L);
    const stream_base base{j.seed, j.experiment};
    T* x = sized(ws.x, n);
    detail::fill_equicorrelated(x, base, stream_kind::input, j.sequences, j.L, j.rows, j.m.x_mean, j.m.x_var,
                                j.m.x_corr, ws.column_shared);
    T* p = sized(ws.y, n);
    thrust::copy(thrust::device, x, x + n, p);
    be.softmax_columns(p, j.L, columns);
    T* dz = sized(ws.dx, n);
    detail::fill_equicorrelated(dz, base, stream_kind::grad, j.sequences, j.L, j.rows, 0.0, j.m.g_var, j.m.g_corr,
                                ws.column_shared);
    be.softmax_columns_backward(p, dz, j.L, columns);
    return {block_sums(p, j.sequences, j.L, j.rows, ws.sums), block_sums(dz, j.sequences, j.L, j.rows, ws.sums)};
}

/// Y = LayerNorm of each token of the L x d input; dX from G by the hand-written backward.
template <class Backend>
experiment_sums run(Backend&, const layer_norm_job& j, workspace<typename Backend::scalar>& ws) {
    using T = typename Backend::scalar;
    using detail::sized;
    // d = 1 would divide 0 by 0 (the one unit is its own mean); epsilon is 0 as in the model.
    if (j.L < 2 || j.d < 2 || j.sequences < 2)
        throw std::invalid_argument("batched layer_norm: need L >= 2, d >= 2, sequences >= 2");
    const std::uint64_t tokens = std::uint64_t(j.sequences) * std::uint64_t(j.L);
    const std::uint64_t n = tokens * std::uint64_t(j.d);
    const stream_base base{j.seed, j.experiment};
    T* x = sized(ws.x, n);
    detail::fill_equicorrelated(x, base, stream_kind::input, j.sequences, j.L, j.d, j.m.x_mean, j.m.x_var, j.m.x_corr,
                                ws.column_shared);
    T* y = sized(ws.y, n);
    double* inv_s = sized(ws.row_scale, tokens);
    for_each_index(tokens, layer_norm_token<T>{x, y, inv_s, j.L, j.d});
    T* dx = sized(ws.dx, n);
    detail::fill_equicorrelated(dx, base, stream_kind::grad, j.sequences, j.L, j.d, 0.0, j.m.g_var, j.m.g_corr,
                                ws.column_shared);
    for_each_index(tokens, layer_norm_token_backward<T>{y, inv_s, dx, j.L, j.d});
    return {block_sums(y, j.sequences, j.L, j.d, ws.sums), block_sums(dx, j.sequences, j.L, j.d, ws.sums)};
}

}  // namespace sigprop::validation::batched
