#pragma once
// Monte-Carlo model of sigprop::linear: y = x W, W i.i.d. N(0, sigma_w^2), fresh per sequence.
#include <Eigen/Core>

#include "sigprop/components/linear.hpp"
#include "sigprop/validation/experiment.hpp"

namespace sigprop::validation {

struct linear_model {
    linear<double> c;
    Eigen::MatrixXd w;

    Eigen::MatrixXd forward(sequence_streams& st, const Eigen::MatrixXd& x) {
        w.resize(c.d_in, c.d_out);
        sample_weights(w, c.sigma_w, st);
        return x * w;
    }
    // dL/dx = G W^T.
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const { return g * w.transpose(); }
};

/// Measures a linear layer; in.width must equal c.d_in.
inline measurement measure(const linear<double>& c, experiment_input in, const run_options& o) {
    in.width = c.d_in;
    linear_model m{c, {}};
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
