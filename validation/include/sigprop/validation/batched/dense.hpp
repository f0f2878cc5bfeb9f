#pragma once
// The batched experiments of the components without attention's structure: the
// element-wise ones (ReLU, GeLU, dropout) and the linear layer, with the computations of
// components/{relu,gelu,dropout,linear}.hpp and the same streams. One source for both
// backends, like batched/attention.hpp.
#include <cmath>
#include <cstdint>
#include <stdexcept>

#include <thrust/functional.h>
#include <thrust/transform.h>

#include "sigprop/core/config.hpp"
#include "sigprop/validation/batched/job.hpp"
#include "sigprop/validation/batched/reduce.hpp"
#include "sigprop/validation/batched/streams.hpp"
#include "sigprop/validation/batched/workspace.hpp"

namespace sigprop::validation::batched {

namespace detail {

/// y = f(x) and f'(x) per element (for dropout f' is the mask scale m / (1 - p)).
template <class T>
struct pointwise_forward {
    pointwise_kind kind;
    stream_base base;
    std::uint64_t per;  ///< elements per sequence (the mask stream's index runs over them)
    double p, keep;
    const T* x;
    T *y, *slope;

    SIGPROP_HD void operator()(std::uint64_t idx) const {
        const double v = double(x[idx]);
        double out = 0, d = 0;
        if (kind == pointwise_kind::relu) {
            d = v > 0 ? 1.0 : 0.0;
            out = v > 0 ? v : 0.0;
        } else if (kind == pointwise_kind::gelu) {
            // x Phi(x), exact erf form, as gelu_model.
            const double cdf = 0.5 * erfc(-v / sqrt(2.0));
            const double pdf = exp(-0.5 * v * v) / sqrt(2.0 * 3.14159265358979323846);
            d = cdf + v * pdf;
            out = v * cdf;
        } else {
            const std::uint64_t s = idx / per, n = idx % per;
            d = stream_of(base, s, stream_kind::masks).uniform(n) > p ? keep : 0.0;
            out = v * d;
        }
        y[idx] = T(out);
        slope[idx] = T(d);
    }
};

}  // namespace detail

/// ReLU, GeLU or dropout on L x width inputs; returns the sums of Y and of dX = G f'(X).
template <class Backend>
experiment_sums run(Backend&, const pointwise_job& j, workspace<typename Backend::scalar>& ws) {
    using T = typename Backend::scalar;
    using detail::sized;
    if (j.L < 2 || j.width < 1 || j.sequences < 2 || !(j.p >= 0 && j.p < 1))
        throw std::invalid_argument("batched pointwise: need L >= 2, width >= 1, sequences >= 2, 0 <= p < 1");
    const std::uint64_t per = std::uint64_t(j.L) * std::uint64_t(j.width), n = per * std::uint64_t(j.sequences);
    const stream_base base{j.seed, j.experiment};
    T* x = sized(ws.x, n);
    detail::fill_equicorrelated(x, base, stream_kind::input, j.sequences, j.L, j.width, j.m.x_mean, j.m.x_var,
                                j.m.x_corr, ws.column_shared);
    T* y = sized(ws.y, n);
    T* slope = sized(ws.slope, n);
    for_each_index(n, detail::pointwise_forward<T>{j.kind, base, per, j.p, 1.0 / (1.0 - j.p), x, y, slope});
    T* g = sized(ws.g, n);
    detail::fill_equicorrelated(g, base, stream_kind::grad, j.sequences, j.L, j.width, 0.0, j.m.g_var, j.m.g_corr,
                                ws.column_shared);
    T* dx = sized(ws.dx, n);
    thrust::transform(thrust::device, g, g + n, slope, dx, thrust::multiplies<T>());
    return {block_sums(y, j.sequences, j.L, j.width, ws.sums), block_sums(dx, j.sequences, j.L, j.width, ws.sums)};
}

/// Y = X W, W d_in x d_out i.i.d. N(0, sigma_w^2) per sequence; dX = G W^T.
template <class Backend>
experiment_sums run(Backend& be, const linear_job& j, workspace<typename Backend::scalar>& ws) {
    using T = typename Backend::scalar;
    using detail::sized;
    if (j.L < 2 || j.d_in < 1 || j.d_out < 1 || j.sequences < 2)
        throw std::invalid_argument("batched linear: need L >= 2, d_in >= 1, d_out >= 1, sequences >= 2");
    const int S = j.sequences, L = j.L;
    const std::uint64_t Su = std::uint64_t(S);
    const long long sx = (long long)L * j.d_in, sw = (long long)j.d_in * j.d_out, sy = (long long)L * j.d_out;
    const stream_base base{j.seed, j.experiment};
    T* x = sized(ws.x, Su * std::uint64_t(sx));
    detail::fill_equicorrelated(x, base, stream_kind::input, S, L, j.d_in, j.m.x_mean, j.m.x_var, j.m.x_corr,
                                ws.column_shared);
    T* w = sized(ws.w, Su * std::uint64_t(sw));
    for_each_index(Su * std::uint64_t(sw),
                   weight_fill<T>{base, std::uint64_t(sw), std::uint64_t(sw), {j.sigma_w, 0, 0}, w});
    T* y = sized(ws.y, Su * std::uint64_t(sy));
    be.gemm(false, false, L, j.d_out, j.d_in, 1.0, x, L, sx, w, j.d_in, sw, y, L, sy, S);
    T* g = sized(ws.g, Su * std::uint64_t(sy));
    detail::fill_equicorrelated(g, base, stream_kind::grad, S, L, j.d_out, 0.0, j.m.g_var, j.m.g_corr,
                                ws.column_shared);
    T* dx = sized(ws.dx, Su * std::uint64_t(sx));
    be.gemm(false, true, L, j.d_in, j.d_out, 1.0, g, L, sy, w, j.d_in, sw, dx, L, sx, S);
    return {block_sums(y, S, L, j.d_out, ws.sums), block_sums(dx, S, L, j.d_in, ws.sums)};
}

}  // namespace sigprop::validation::batched
