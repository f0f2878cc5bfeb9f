#pragma once
// What predict(spec) returns: the forward and backward moments of the residual stream at
// every residual boundary of a whole transformer, and the expected squared Frobenius norm
// of the gradient of every weight matrix, layer by layer. Derivations: docs/theory/models.md.
#include <vector>

#include "sigprop/core/moments.hpp"

namespace sigprop {

/// Which residual boundary a trajectory point is: the stream after the input (embedding,
/// embedding dropout) or after a block, or after the stack's final LayerNorm.
enum class boundary_kind : unsigned char { input, attention, cross_attention, ffn, final_norm };

/// Which stack a point belongs to (encoder-only models have only `encoder`, decoder-only
/// models only `decoder`).
enum class stack_kind : unsigned char { encoder, decoder };

/// One residual boundary: the stream's forward moments x and the moments g of the
/// gradient dLoss/d(stream) there. `layer` is the 0-based layer within the stack (-1 for
/// the input point; `layers` for the final norm).
template <class T>
struct boundary {
    boundary_kind kind{boundary_kind::input};
    stack_kind stack{stack_kind::encoder};
    int layer{-1};
    signal<T> x{};
    gradient<T> g{};
};

/// E||dW||_F^2 of every weight matrix of one layer, for one sequence and the loss
/// sum(Y * G) with the spec's output gradient (q, k, v, o summed over heads). Cross-
/// attention entries are 0 outside the decoder layers of an encoder-decoder. q and k come
/// from one shared sum (q / sigma_k^2 = k / sigma_q^2); their accuracy is in
/// docs/ACCURACY.md: a few percent to 17 % for encoders, not yet right for causal
/// (decoder) self-attention.
template <class T>
struct weight_grad_norms {
    T q{0}, k{0}, v{0}, o{0};
    T ffn1{0}, ffn2{0};
    T cross_q{0}, cross_k{0}, cross_v{0}, cross_o{0};
};

template <class T>
struct trajectory {
    /// Residual boundaries in forward order: for every stack, its input point, then for
    /// each layer the attention point, (cross-attention point,) FFN point, and the final
    /// norm point when the spec has one. Encoder-decoder: the encoder's points first.
    std::vector<boundary<T>> points;
    /// One entry per layer in the order of spec.sigmas (encoder-decoder: encoder first).
    std::vector<weight_grad_norms<T>> weight_grads;
    /// The first layer (index into spec.sigmas' order) at which a forward variance, a
    /// gradient variance or a weight-gradient norm is +infinity (the configuration
    /// explodes); the input point counts as layer 0 of its stack. -1: nothing overflowed.
    int overflow_layer{-1};
};

}  // namespace sigprop
