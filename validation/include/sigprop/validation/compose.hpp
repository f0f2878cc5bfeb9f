#pragma once
// Monte-Carlo models of the combinators: serial_model runs part models one after the
// other, residual_model computes y = lambda x + beta F(x). Parts draw their weights and
// masks from streams of their own (part_streams), so no two parts share random numbers.
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <utility>

#include <Eigen/Core>

#include "sigprop/validation/experiment.hpp"
#include "sigprop/validation/philox.hpp"

namespace sigprop::validation {

/// SplitMix64 finaliser: a bijective mix of 64 bits.
inline std::uint64_t mix64(std::uint64_t z) noexcept {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/// The key of part `part` of a composite derived from a stream key. Philox is keyed by
/// the 64-bit seed, so a part's streams get the seed mixed with (part + 1): an unrelated
/// Philox key, hence independent numbers, while experiment and stream (which sequence,
/// which kind of stream) are kept. Nesting derives again (a part of a part), so every
/// path through a composite gets its own key; a collision with another seed in use would
/// need two 64-bit mixes to meet.
inline stream_key part_key(const stream_key& k, std::uint32_t part) noexcept {
    return {mix64(k.seed + 0x9e3779b97f4a7c15ULL * (std::uint64_t(part) + 1)), k.experiment, k.stream};
}

/// Fresh streams for part `part` of the composite that received `st`. The part's readers
/// start at position 0 of their own streams.
inline sequence_streams part_streams(const sequence_streams& st, std::uint32_t part) {
    return {normal_sequence{part_key(st.weights.key(), part)}, normal_sequence{part_key(st.input.key(), part)},
            normal_sequence{part_key(st.grad.key(), part)}, philox_stream{part_key(st.masks.key(), part)}};
}

/// Part models applied in order; the backward runs them in reverse, each with the state
/// of its own latest forward.
template <class... Models>
struct serial_model {
    std::tuple<Models...> parts;

    Eigen::MatrixXd forward(sequence_streams& st, const Eigen::MatrixXd& x) {
        Eigen::MatrixXd y = x;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            ((y = forward_part<I>(st, y)), ...);
        }(std::index_sequence_for<Models...>{});
        return y;
    }

    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) {
        Eigen::MatrixXd d = g;
        [&]<std::size_t... I>(std::index_sequence<I...>) {
            constexpr std::size_t n = sizeof...(Models);
            ((d = std::get<n - 1 - I>(parts).backward(d)), ...);
        }(std::index_sequence_for<Models...>{});
        return d;
    }

private:
    template <std::size_t I>
    Eigen::MatrixXd forward_part(sequence_streams& st, const Eigen::MatrixXd& x) {
        auto ps = part_streams(st, std::uint32_t(I));
        return std::get<I>(parts).forward(ps, x);
    }
};

template <class... Models>
serial_model<Models...> make_serial_model(Models... m) {
    return {std::tuple<Models...>(std::move(m)...)};
}

/// y = lambda x + beta F(x); dL/dx = lambda G + beta J_F^T G.
template <class Branch>
struct residual_model {
    Branch branch;
    double lambda{1};
    double beta{1};

    Eigen::MatrixXd forward(sequence_streams& st, const Eigen::MatrixXd& x) {
        auto ps = part_streams(st, 0);
        return lambda * x + beta * branch.forward(ps, x);
    }
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) { return lambda * g + beta * branch.backward(g); }
};

template <class Branch>
residual_model<Branch> make_residual_model(Branch b, double lambda = 1, double beta = 1) {
    return {std::move(b), lambda, beta};
}

/// Runs a composite model; in.width must be the first part's input width.
template <class Model>
measurement measure_model(Model& m, const experiment_input& in, const run_options& o) {
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
