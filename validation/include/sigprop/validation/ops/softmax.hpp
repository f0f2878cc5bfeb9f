#pragma once
// Softmax over the rows of each column (a column holds the L entries one softmax
// normalises) and its hand-written backward. Shared by the softmax and attention models.
#include <Eigen/Core>

namespace sigprop::validation::ops {

/// p[:,k] = softmax(z[:,k]), computed with the column maximum subtracted.
inline Eigen::MatrixXd softmax_columns(const Eigen::MatrixXd& z) {
    Eigen::MatrixXd p(z.rows(), z.cols());
    for (Eigen::Index k = 0; k < z.cols(); ++k) {
        const double m = z.col(k).maxCoeff();
        p.col(k) = (z.col(k).array() - m).exp().matrix();
        p.col(k) /= p.col(k).sum();
    }
    return p;
}

/// dL/dz for p = softmax(z) per column: dz = p * (dp - sum(p * dp)).
inline Eigen::MatrixXd softmax_columns_backward(const Eigen::MatrixXd& p, const Eigen::MatrixXd& dp) {
    Eigen::MatrixXd dz(p.rows(), p.cols());
    for (Eigen::Index k = 0; k < p.cols(); ++k) {
        const double c = p.col(k).dot(dp.col(k));
        dz.col(k) = (p.col(k).array() * (dp.col(k).array() - c)).matrix();
    }
    return dz;
}

}  // namespace sigprop::validation::ops
