#pragma once
// One Monte-Carlo experiment: sample inputs and incoming gradients with requested moments,
// run a real randomly initialised component forward and backward, measure both sides.
#include <array>
#include <cstdint>
#include <stdexcept>

#include <Eigen/Core>

#include "sigprop/core/moments.hpp"
#include "sigprop/validation/estimator.hpp"
#include "sigprop/validation/philox.hpp"
#include "sigprop/validation/sampler.hpp"

namespace sigprop::validation {

/// What to feed a component: input moments, moments of the gradient at its output, the
/// number of tokens L and the width d of the input (units per token).
struct experiment_input {
    signal<double> x{};
    gradient<double> g{};
    int tokens{2};
    int width{1};
};

/// How much to sample. Every sequence draws fresh weights, inputs, gradients and dropout
/// masks from its own streams, so sequences are independent; they are spread over
/// `blocks` jackknife blocks for the standard errors.
struct run_options {
    std::uint64_t seed{20240311};
    std::uint32_t experiment{0};
    int sequences{64};
    int blocks{16};
};

/// What an experiment measures: the output's moments and the input gradient's moments.
struct measurement {
    measured_moments y;  ///< forward: moments of the component's output
    measured_moments g;  ///< backward: moments of dLoss/dInput (its mean is ~0)
    /// The same estimates from two independent halves of the sequences (noise floor).
    std::array<measured_moments, 2> y_halves{};
    std::array<measured_moments, 2> g_halves{};
};

/// The random streams of one sequence: one for weights, inputs, gradients, masks.
struct sequence_streams {
    normal_sequence weights, input, grad;
    philox_stream masks;
};

inline sequence_streams streams_for(const run_options& o, int sequence) {
    auto key = [&](std::uint32_t which) {
        return stream_key{o.seed, o.experiment, std::uint32_t(sequence) * 4u + which};
    };
    return {normal_sequence{key(0)}, normal_sequence{key(1)}, normal_sequence{key(2)},
            philox_stream{key(3)}};
}

/// Runs `sequences` sequences of a component model. Model must provide
///   Eigen::MatrixXd forward(sequence_streams&, const Eigen::MatrixXd& x)   // L x width -> L x w_out
///   Eigen::MatrixXd backward(const Eigen::MatrixXd& g)                     // L x w_out -> L x width
/// with the backward using the state of the latest forward. Rows are tokens; every
/// column is one unit of one sequence, which is how the estimator pools samples.
template <class Model>
measurement simulate(Model& model, const experiment_input& in, const run_options& o) {
    if (in.tokens < 2 || in.width < 1 || o.sequences < 2 || o.blocks < 2)
        throw std::invalid_argument("simulate: need tokens >= 2, width >= 1, sequences >= 2, blocks >= 2");
    const int blocks = o.blocks < o.sequences ? o.blocks : o.sequences;
    moment_accumulator fwd(in.tokens, blocks), bwd(in.tokens, blocks);
    Eigen::MatrixXd x(in.tokens, in.width), g;
    for (int s = 0; s < o.sequences; ++s) {
        auto st = streams_for(o, s);
        sample_signal(x, in.x, st.input);
        const Eigen::MatrixXd y = model.forward(st, x);
        g.resize(y.rows(), y.cols());
        sample_gradient(g, in.g, st.grad);
        const Eigen::MatrixXd dx = model.backward(g);
        fwd.add(y, s % blocks);
        bwd.add(dx, s % blocks);
    }
    return {fwd.result(), bwd.result(), fwd.halves(), bwd.halves()};
}

/// Fills w with i.i.d. N(0, sigma^2) weights from the sequence's weight stream.
inline void sample_weights(Eigen::Ref<Eigen::MatrixXd> w, double sigma, sequence_streams& st) {
    st.weights.fill(w.data(), std::uint64_t(w.size()));
    w *= sigma;
}

}  // namespace sigprop::validation
