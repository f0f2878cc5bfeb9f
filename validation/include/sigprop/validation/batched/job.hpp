#pragma once
// What a batched backend is asked to run and what it hands back. Plain data only (no
// Thrust, no Eigen), so that the CUDA library's interface compiles with either compiler.
#include <cstdint>
#include <vector>

namespace sigprop::validation::batched {

/// Requested moments of the input and of the incoming gradient (REFERENCE.md section 1).
struct moment_request {
    double x_mean{0}, x_var{1}, x_corr{0};
    double g_var{1}, g_corr{0};
};

/// One attention experiment (all its sequences run as one batch): the shape and weight
/// scales of sigprop::attention, the moments, and the keys of its random streams.
struct attention_job {
    int L{2}, d_in{1}, d_head{1};
    double sigma_q{0}, sigma_k{0}, sigma_v{0}, p{0};
    moment_request m{};
    std::uint64_t seed{0};
    std::uint32_t experiment{0};
    int sequences{2};
};

/// An element-wise experiment: ReLU, GeLU (exact erf form) or inverted dropout with
/// probability p, on L x width inputs.
enum class pointwise_kind { relu, gelu, dropout };

struct pointwise_job {
    pointwise_kind kind{pointwise_kind::relu};
    int L{2}, width{1};
    double p{0};
    moment_request m{};
    std::uint64_t seed{0};
    std::uint32_t experiment{0};
    int sequences{2};
};

/// A linear layer d_in -> d_out with weights N(0, sigma_w^2), no bias.
struct linear_job {
    int L{2}, d_in{1}, d_out{1};
    double sigma_w{0};
    moment_request m{};
    std::uint64_t seed{0};
    std::uint32_t experiment{0};
    int sequences{2};
};

/// A softmax over each column of L x rows inputs (a column holds the L logits one softmax
/// normalises, as softmax_model lays them out).
struct softmax_job {
    int L{2}, rows{1};
    moment_request m{};
    std::uint64_t seed{0};
    std::uint32_t experiment{0};
    int sequences{2};
};

/// A LayerNorm over each token's d units of L x d inputs (gain 1, bias 0, epsilon 0).
struct layer_norm_job {
    int L{2}, d{2};
    moment_request m{};
    std::uint64_t seed{0};
    std::uint32_t experiment{0};
    int sequences{2};
};

/// Sufficient statistics of one activation, per sequence (the estimator's block sums):
/// x2[s] = sum of squares, s2[s] = sum over columns of the squared column sum,
/// t[s * tokens + i] = sum of token i over the columns; every sequence has `columns` columns.
struct sequence_sums {
    int tokens{0};
    int columns{0};
    std::vector<double> x2, s2, t;
};

/// The forward output's and the input gradient's sums of one experiment.
struct experiment_sums {
    sequence_sums y, g;
};

}  // namespace sigprop::validation::batched
