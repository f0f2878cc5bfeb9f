#pragma once
// Monte-Carlo model of sigprop::gelu: y = x Phi(x) element-wise (exact erf form); no weights.
#include <cmath>

#include <Eigen/Core>

#include "sigprop/components/gelu.hpp"
#include "sigprop/validation/experiment.hpp"

namespace sigprop::validation {

struct gelu_model {
    Eigen::MatrixXd slope;  // gelu'(x) = Phi(x) + x phi(x) of the latest forward

    Eigen::MatrixXd forward(sequence_streams&, const Eigen::MatrixXd& x) {
        const Eigen::ArrayXXd cdf = x.array().unaryExpr([](double v) { return 0.5 * std::erfc(-v / std::sqrt(2.0)); });
        const Eigen::ArrayXXd pdf = (-0.5 * x.array().square()).exp() / std::sqrt(2.0 * 3.14159265358979323846);
        slope = (cdf + x.array() * pdf).matrix();
        return (x.array() * cdf).matrix();
    }
    // dL/dx = G * gelu'(x).
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const { return g.cwiseProduct(slope); }
};

/// Measures a GeLU on in.width independent units per token (the form is irrelevant here).
inline measurement measure(const gelu<double>&, const experiment_input& in, const run_options& o) {
    gelu_model m;
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
