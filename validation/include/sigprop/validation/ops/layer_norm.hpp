#pragma once
// Row-wise LayerNorm (a row holds one token's d units; gain 1, bias 0, epsilon 0) and its
// hand-written backward. Shared by the LayerNorm component model and the whole-model
// Monte-Carlo.
#include <Eigen/Core>

namespace sigprop::validation::ops {

/// y = (x - m) / s per row, m the row mean and s^2 the biased row variance; also returns
/// 1 / s per row (the backward's cache).
inline void layer_norm_rows(const Eigen::MatrixXd& x, Eigen::MatrixXd& y, Eigen::ArrayXd& inv_s) {
    const double d = double(x.cols());
    y = x.colwise() - x.rowwise().mean();
    inv_s = (y.array().square().rowwise().sum() / d).sqrt().inverse();
    y.array().colwise() *= inv_s;
}

/// dL/dx for y = layer_norm_rows(x), given y, 1 / s and g = dL/dy. With s^2 = |x - m|^2 / d,
/// dy/dx = (1/s)(I - 11^T/d - y y^T/d) (symmetric), so dx = (1/s) (g - mean(g) - y mean(g * y))
/// per row.
inline Eigen::MatrixXd layer_norm_rows_backward(const Eigen::MatrixXd& y, const Eigen::ArrayXd& inv_s,
                                                const Eigen::MatrixXd& g) {
    const Eigen::ArrayXd mean_g = g.rowwise().mean();
    const Eigen::ArrayXd mean_gy = (g.array() * y.array()).rowwise().mean();
    Eigen::ArrayXXd dx = g.array().colwise() - mean_g;
    dx -= y.array().colwise() * mean_gy;
    dx.colwise() *= inv_s;
    return dx.matrix();
}

}  // namespace sigprop::validation::ops
