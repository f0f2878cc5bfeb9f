#pragma once
// Monte-Carlo model of sigprop::dropout: y = x * m / (1 - p), m[i,k] i.i.d. Bernoulli(1 - p),
// a fresh mask for every element of every sequence.
#include <cstdint>

#include <Eigen/Core>

#include "sigprop/components/dropout.hpp"
#include "sigprop/validation/experiment.hpp"

namespace sigprop::validation {

struct dropout_model {
    dropout<double> c;
    Eigen::MatrixXd scale;  ///< m / (1 - p) of the latest forward, kept for the backward

    // Element n (column-major) is kept when uniform number n of the mask stream, which lies
    // in (0, 1), exceeds p: probability 1 - p up to the 2^-32 grid of the uniforms.
    Eigen::MatrixXd forward(sequence_streams& st, const Eigen::MatrixXd& x) {
        scale.resize(x.rows(), x.cols());
        const double kept = 1.0 / (1.0 - c.p);
        for (Eigen::Index n = 0; n < scale.size(); ++n)
            scale.data()[n] = st.masks.uniform(std::uint64_t(n)) > c.p ? kept : 0.0;
        return x.cwiseProduct(scale);
    }
    // dL/dx = G * m / (1 - p) with the forward's mask.
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const { return g.cwiseProduct(scale); }
};

/// Measures dropout on inputs of width in.width.
inline measurement measure(const dropout<double>& c, const experiment_input& in, const run_options& o) {
    dropout_model m{c, {}};
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
