#pragma once
// The invariants of a whole-model prediction, shared by the targets that reach predict().
#include "invariants.hpp"
#include "sigprop/models.hpp"

namespace sigprop::fuzz {

/// Layers and causal work above which a target skips predict(): its cost is O(layers) plus
/// O(seq_len) per causal block, and a fuzzer needs thousands of executions a second.
inline constexpr int max_fuzz_layers = 48;
inline constexpr double max_fuzz_causal_work = 2e5;

template <class T>
bool cheap_enough(const transformer_spec<T>& s) {
    const double causal = s.arch == architecture::encoder ? 0.0 : double(s.layers) * double(s.seq_len);
    return s.layers <= max_fuzz_layers && causal <= max_fuzz_causal_work;
}

template <class T>
void check(const trajectory<T>& tr) {
    bool any_inf = false;
    const auto var = [&](const char* what, const T& v) {
        check_var(what, v);
        any_inf = any_inf || std::isinf(v);
    };
    for (const auto& p : tr.points) {
        check_mean("point.x.mean", p.x.mean);
        var("point.x.var", p.x.var);
        check_corr("point.x.corr", p.x.corr);
        var("point.g.var", p.g.var);
        check_corr("point.g.corr", p.g.corr);
    }
    for (const auto& w : tr.weight_grads)
        for (const T& v : {w.q, w.k, w.v, w.o, w.ffn1, w.ffn2, w.cross_q, w.cross_k, w.cross_v, w.cross_o})
            var("weight_grad", v);
    // The model level must report where an overflow happened (DESIGN.md, "Errors").
    if (any_inf != (tr.overflow_layer >= 0)) violated("overflow_layer", tr.overflow_layer);
}

}  // namespace sigprop::fuzz
