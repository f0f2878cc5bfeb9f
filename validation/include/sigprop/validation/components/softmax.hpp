#pragma once
// Monte-Carlo model of sigprop::softmax: every column of the L x width input is one row of
// L logits (the token axis is the entries of the row); softmax over it, hand-written backward.
#include <Eigen/Core>

#include "sigprop/components/softmax.hpp"
#include "sigprop/validation/experiment.hpp"
#include "sigprop/validation/ops/softmax.hpp"

namespace sigprop::validation {

struct softmax_model {
    Eigen::MatrixXd p;

    Eigen::MatrixXd forward(sequence_streams&, const Eigen::MatrixXd& x) {
        p = ops::softmax_columns(x);
        return p;
    }
    // dL/dz = p * (g - sum_j p_j g_j), column by column.
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const { return ops::softmax_columns_backward(p, g); }
};

/// Measures a softmax over c.L entries; in.width independent rows per sequence.
inline measurement measure(const softmax<double>& c, experiment_input in, const run_options& o) {
    in.tokens = c.L;
    softmax_model m;
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
