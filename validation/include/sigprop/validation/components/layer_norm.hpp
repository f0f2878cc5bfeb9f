#pragma once
// Monte-Carlo model of sigprop::layer_norm: per token (row) y = (x - m) / s with m the
// mean and s^2 the biased variance of its d units; gain 1, bias 0, epsilon 0. No weights.
#include <Eigen/Core>

#include "sigprop/components/layer_norm.hpp"
#include "sigprop/validation/experiment.hpp"

namespace sigprop::validation {

struct layer_norm_model {
    layer_norm<double> c;
    Eigen::MatrixXd y;      ///< the latest output (L x d)
    Eigen::ArrayXd inv_s;   ///< 1 / s per token of the latest input

    Eigen::MatrixXd forward(sequence_streams&, const Eigen::MatrixXd& x) {
        const double d = double(x.cols());
        y = x.colwise() - x.rowwise().mean();
        inv_s = (y.array().square().rowwise().sum() / d).sqrt().inverse();
        y.array().colwise() *= inv_s;
        return y;
    }

    // Hand-written backward. With s^2 = |x - m|^2 / d, dy/dx = (1/s)(I - 11^T/d - y y^T/d)
    // (symmetric), so dx = (1/s) (g - mean(g) - y mean(g * y)) per token.
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const {
        const Eigen::ArrayXd mean_g = g.rowwise().mean();
        const Eigen::ArrayXd mean_gy = (g.array() * y.array()).rowwise().mean();
        Eigen::ArrayXXd dx = g.array().colwise() - mean_g;
        dx -= y.array().colwise() * mean_gy;
        dx.colwise() *= inv_s;
        return dx.matrix();
    }
};

/// Measures a LayerNorm; in.width is set to c.d.
inline measurement measure(const layer_norm<double>& c, experiment_input in, const run_options& o) {
    in.width = c.d;
    layer_norm_model m{c, {}, {}};
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
