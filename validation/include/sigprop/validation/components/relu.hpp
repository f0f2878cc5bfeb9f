#pragma once
// Monte-Carlo model of sigprop::relu: y = max(x, 0) element-wise; no weights.
#include <Eigen/Core>

#include "sigprop/components/relu.hpp"
#include "sigprop/validation/experiment.hpp"

namespace sigprop::validation {

struct relu_model {
    Eigen::MatrixXd slope;  // relu'(x) of the latest forward: 1 where x > 0, else 0

    Eigen::MatrixXd forward(sequence_streams&, const Eigen::MatrixXd& x) {
        slope = (x.array() > 0.0).cast<double>().matrix();
        return x.cwiseMax(0.0);
    }
    // dL/dx = G * relu'(x).
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const { return g.cwiseProduct(slope); }
};

/// Measures a ReLU on in.width independent units per token (the form is irrelevant here).
inline measurement measure(const relu<double>&, const experiment_input& in, const run_options& o) {
    relu_model m;
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
