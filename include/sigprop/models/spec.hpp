#pragma once
// The description of a whole transformer at initialisation: what predict() evaluates and
// what the whole-model Monte-Carlo validator builds and runs.
#include <optional>
#include <vector>

#include "sigprop/components/embedding.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

/// Where the LayerNorm sits. Pre-LN: x <- x + F(LN(x)). Post-LN: x <- LN(x + F(x)).
/// None: x <- x + F(x), no LayerNorm in any block (T-Fixup; `final_norm` still applies).
enum class norm_placement : unsigned char { pre, post, none };

/// The FFN's activation.
enum class activation : unsigned char { relu, gelu };

/// Encoder: bidirectional self-attention. Decoder: causal self-attention (token i sees
/// keys 1..i). Encoder-decoder: an encoder stack, then a decoder stack whose layers add a
/// cross-attention block (queries from the decoder stream, keys and values from the
/// encoder's output) between self-attention and FFN.
enum class architecture : unsigned char { encoder, decoder, encoder_decoder };

/// Standard deviations of the weights of one layer (each matrix i.i.d. N(0, sigma^2)).
/// Cross-attention weights are used by encoder-decoder decoder layers only.
template <class T>
struct layer_sigmas {
    T q{0.02}, k{0.02}, v{0.02}, o{0.02};
    T ffn1{0.02}, ffn2{0.02};
    T cross_q{0.02}, cross_k{0.02}, cross_v{0.02}, cross_o{0.02};
};

/// A whole model. Every layer is: attention block, then FFN block, each a residual
/// y = lambda x + beta F(x) (with the LayerNorm placed per `norm`); dropout p_hidden at
/// the end of each branch, p_attention on the attention probabilities, p_embedding after
/// the embedding.
template <class T>
struct transformer_spec {
    int layers{12};               ///< N, layers per stack (encoder-decoder: per stack)
    int d_model{768};
    int d_ff{3072};
    int heads{12};
    int seq_len{512};             ///< L (decoder side for encoder-decoder)
    int source_len{0};            ///< encoder length for encoder-decoder; 0 = seq_len
    norm_placement norm{norm_placement::pre};
    bool final_norm{false};       ///< a LayerNorm after the last layer
    activation act{activation::gelu};
    architecture arch{architecture::encoder};
    T p_hidden{0};
    T p_attention{0};
    T p_embedding{0};
    T lambda{1};                  ///< residual weights, y = lambda x + beta F(x)
    T beta{1};
    /// One entry per layer (size `layers`; encoder-decoder: 2 * layers, encoder first).
    std::vector<layer_sigmas<T>> sigmas{};
    /// The model's input: an embedding (its output moments, then embedding dropout) or,
    /// when absent, the moments in `input`.
    std::optional<embedding<T>> embed{};
    signal<T> input{0, 1, 0};
    /// The gradient arriving at the model's output (after the final norm, if any).
    gradient<T> output_gradient{1, 0};
    /// Added for encoder-decoder schemes whose two stacks use different residual weights
    /// (DeepNorm): the decoder stack's lambda and beta. Empty: the decoder uses `lambda`
    /// and `beta` like the encoder. Ignored unless arch is encoder_decoder.
    std::optional<T> decoder_lambda{};
    std::optional<T> decoder_beta{};
};

}  // namespace sigprop
