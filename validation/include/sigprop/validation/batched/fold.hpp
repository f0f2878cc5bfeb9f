#pragma once
// Turns a batched backend's per-sequence sums into the estimator's measurement, with the
// jackknife blocks simulate() uses (sequence s goes to block s mod blocks).
#include <algorithm>
#include <cstddef>

#include "sigprop/validation/batched/job.hpp"
#include "sigprop/validation/estimator.hpp"
#include "sigprop/validation/experiment.hpp"

namespace sigprop::validation::batched {

inline moment_accumulator accumulate(const sequence_sums& s, int blocks) {
    moment_accumulator acc(s.tokens, blocks);
    for (std::size_t k = 0; k < s.x2.size(); ++k)
        acc.add_sums(int(k % std::size_t(blocks)), double(s.columns), s.x2[k], s.s2[k],
                     s.t.data() + k * std::size_t(s.tokens));
    return acc;
}

/// The measurement of an experiment of `requested_blocks` blocks (run_options::blocks).
inline measurement fold(const experiment_sums& e, int requested_blocks) {
    const int blocks = std::min(requested_blocks, int(e.y.x2.size()));
    const auto y = accumulate(e.y, blocks), g = accumulate(e.g, blocks);
    return {y.result(), g.result(), y.halves(), g.halves()};
}

}  // namespace sigprop::validation::batched
