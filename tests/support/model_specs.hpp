#pragma once
// Whole-model fixtures shared by the model tests: a Xavier-initialised spec of a given
// shape, and the Monte-Carlo options the tests measure with.
#include <cstdint>

#include "sigprop/models/schemes.hpp"
#include "sigprop/validation/models/transformer.hpp"

namespace sigprop::test {

/// A GeLU transformer without dropout, input (0, 1, 0), every sigma from apply_xavier.
inline transformer_spec<double> xavier_model(int layers, int d_model, int d_ff, int heads, int seq_len,
                                             norm_placement norm, architecture arch) {
    transformer_spec<double> s;
    s.layers = layers;
    s.d_model = d_model;
    s.d_ff = d_ff;
    s.heads = heads;
    s.seq_len = seq_len;
    s.norm = norm;
    s.arch = arch;
    apply_xavier(s);
    return s;
}

/// Monte-Carlo options: `sequences` in all, `per_draw` consecutive ones sharing a weight
/// draw, 16 jackknife blocks.
inline validation::model_run_options mc_options(int sequences, int per_draw, std::uint64_t seed) {
    validation::model_run_options o;
    o.sequences = sequences;
    o.sequences_per_draw = per_draw;
    o.blocks = 16;
    o.seed = seed;
    return o;
}

}  // namespace sigprop::test
