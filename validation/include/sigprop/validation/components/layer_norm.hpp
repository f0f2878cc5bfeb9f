#pragma once
// Monte-Carlo model of sigprop::layer_norm: per token (row) y = (x - m) / s with m the
// mean and s^2 the biased variance of its d units; gain 1, bias 0, epsilon 0. No weights.
#include <Eigen/Core>

#include "sigprop/components/layer_norm.hpp"
#include "sigprop/validation/experiment.hpp"
#include "sigprop/validation/ops/layer_norm.hpp"

namespace sigprop::validation {

struct layer_norm_model {
    layer_norm<double> c;
    Eigen::MatrixXd y;      ///< the latest output (L x d)
    Eigen::ArrayXd inv_s;   ///< 1 / s per token of the latest input

    Eigen::MatrixXd forward(sequence_streams&, const Eigen::MatrixXd& x) {
        ops::layer_norm_rows(x, y, inv_s);
        return y;
    }

    // Hand-written backward (ops::layer_norm_rows_backward).
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const { return ops::layer_norm_rows_backward(y, inv_s, g); }
};

/// Measures a LayerNorm; in.width is set to c.d.
inline measurement measure(const layer_norm<double>& c, experiment_input in, const run_options& o) {
    in.width = c.d;
    layer_norm_model m{c, {}, {}};
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
