#pragma once
// Named models for `sigprop predict PRESET`, each with the dimensions, norm placement,
// activation, initialisation and dropout of its published configuration. docs/TOOL.md
// lists the same table with its sources; tests/cli/presets.test.cpp checks every entry
// against those sources.
#include <span>
#include <string>
#include <string_view>

#include "cli/model_config.hpp"

namespace sigprop::cli {

struct preset {
    std::string_view name;
    std::string_view summary;  ///< one line for --help and `sigprop presets`
    std::string_view source;   ///< where the numbers come from
    int vocab;                 ///< token vocabulary (0: none, e.g. image patches)
    model_config (*make)();
};

namespace detail {

/// Token ids are modelled as i.i.d. draws from Zipf's law with exponent 1 over the
/// vocabulary (the usual first approximation of word frequencies); the probability that
/// two positions of a sequence share a word-table row is then sum p_k^2. Real text is
/// burstier, so this is a lower bound on the input's token correlation; pass
/// --input-corr or an embedding in --config for measured values.
inline double word_same_row(int vocab) { return same_row_probability_zipf<double>(std::uint64_t(vocab), 1.0); }

inline model_config bert(int layers, int d, int heads, int d_ff) {
    model_config c;
    auto& s = c.spec;
    s.layers = layers;
    s.d_model = d;
    s.heads = heads;
    s.d_ff = d_ff;
    s.seq_len = 512;
    s.norm = norm_placement::post;
    s.act = activation::gelu;
    s.arch = architecture::encoder;
    s.p_hidden = s.p_attention = s.p_embedding = 0.1;
    // Word, position and segment tables, N(0, 0.02^2) each, two equally likely segments;
    // then BERT's embedding LayerNorm and embedding dropout.
    s.embed = bert_embedding<double>(word_same_row(30522));
    c.embedding_norm = true;
    c.scheme = "bert";
    c.sigma = 0.02;
    return c;
}

/// GPT-2: token table N(0, 0.02^2), position table N(0, 0.01^2), embedding dropout; no
/// embedding LayerNorm (Pre-LN blocks, a final LayerNorm).
inline model_config gpt2(int layers, int d, int heads) {
    model_config c;
    auto& s = c.spec;
    s.layers = layers;
    s.d_model = d;
    s.heads = heads;
    s.d_ff = 4 * d;
    s.seq_len = 1024;
    s.norm = norm_placement::pre;
    s.final_norm = true;
    s.act = activation::gelu;
    s.arch = architecture::decoder;
    s.p_hidden = s.p_attention = s.p_embedding = 0.1;
    s.embed = embedding<double>{{{0.02, word_same_row(50257)}, {0.01, 0.0}}};
    c.scheme = "gpt2";
    c.sigma = 0.02;
    return c;
}

/// T5 (Raffel et al. 2020) base: Pre-norm (RMSNorm, modelled as LayerNorm), ReLU, 12 + 12
/// layers, one shared token table N(0, 1) and no absolute positions (relative biases are
/// not modelled). Its Mesh-TensorFlow init (initializer_factor 1) is N(0, 1/fan_in) for
/// every matrix, q scaled by a further 1/sqrt(d_kv) because T5 does not divide the scores
/// by sqrt(d_kv): the same scores as the spec's scaled attention with q ~ N(0, 1/d), so
/// the scheme is xavier-fan-in.
inline model_config t5_base() {
    model_config c;
    auto& s = c.spec;
    s.layers = 12;
    s.d_model = 768;
    s.heads = 12;
    s.d_ff = 3072;
    s.seq_len = 512;
    s.norm = norm_placement::pre;
    s.final_norm = true;
    s.act = activation::relu;
    s.arch = architecture::encoder_decoder;
    s.p_hidden = s.p_attention = s.p_embedding = 0.1;
    s.embed = embedding<double>{{{1.0, word_same_row(32128)}}};
    c.scheme = "xavier-fan-in";
    return c;
}

/// ViT-B/16 (Dosovitskiy et al. 2021): 196 patches of 16x16x3 plus the class token,
/// Pre-LN, GELU, a final LayerNorm; Dense and attention kernels Xavier-uniform (the same
/// variance as Xavier-normal, fan_avg); dropout 0.1 after each branch, none on attention.
/// The input moments are an assumption: unit variance, token correlation 0.2 (patches of
/// one image share colour and texture statistics); measure yours and pass --input-corr.
inline model_config vit_base() {
    model_config c;
    auto& s = c.spec;
    s.layers = 12;
    s.d_model = 768;
    s.heads = 12;
    s.d_ff = 3072;
    s.seq_len = 197;
    s.norm = norm_placement::pre;
    s.final_norm = true;
    s.act = activation::gelu;
    s.arch = architecture::encoder;
    s.p_hidden = 0.1;
    s.p_attention = 0.0;
    s.input = {0.0, 1.0, 0.2};
    c.scheme = "xavier";
    return c;
}

/// The built-in default's model: BERT-large's width at the paper's depth of 192 layers.
inline model_config deep_bert_large() { return bert(192, 1024, 16, 4096); }

}  // namespace detail

inline constexpr preset presets[] = {
    {"bert-base", "BERT-base: 12 layers, d 768, 12 heads, Post-LN, GELU, N(0, 0.02^2)",
     "Devlin et al. 2019, Sec. 3; Hugging Face bert-base-uncased config (initializer_range 0.02)", 30522,
     [] { return detail::bert(12, 768, 12, 3072); }},
    {"bert-large", "BERT-large: 24 layers, d 1024, 16 heads, Post-LN, GELU, N(0, 0.02^2)",
     "Devlin et al. 2019, Sec. 3; Hugging Face bert-large-uncased config", 30522,
     [] { return detail::bert(24, 1024, 16, 4096); }},
    {"gpt2-small", "GPT-2 small (124M): 12 layers, d 768, 12 heads, Pre-LN, causal, GPT-2 init",
     "Radford et al. 2019; openai/gpt-2 model.py and Hugging Face gpt2 config", 50257,
     [] { return detail::gpt2(12, 768, 12); }},
    {"gpt2-medium", "GPT-2 medium (355M): 24 layers, d 1024, 16 heads, Pre-LN, causal, GPT-2 init",
     "Radford et al. 2019; Hugging Face gpt2-medium config", 50257, [] { return detail::gpt2(24, 1024, 16); }},
    {"t5-base", "T5 base: 12+12 layers encoder-decoder, d 768, 12 heads, Pre-LN, ReLU, fan-in init",
     "Raffel et al. 2020, Sec. 3.1; Hugging Face t5-base config and T5PreTrainedModel._init_weights", 32128,
     detail::t5_base},
    {"vit-base", "ViT-B/16: 12 layers, d 768, 12 heads, 197 tokens, Pre-LN, GELU, Xavier",
     "Dosovitskiy et al. 2021, Table 1; google-research/vision_transformer models", 0, detail::vit_base},
};

/// The preset called `name`, or nullptr.
inline const preset* find_preset(std::string_view name) {
    for (const auto& p : presets)
        if (p.name == name) return &p;
    return nullptr;
}

}  // namespace sigprop::cli
