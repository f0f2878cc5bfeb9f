#pragma once
// The GPU backend of the validator as the rest of the code sees it: plain C++ (compiled by
// g++ in the tools, by nvcc in its implementation, src/gpu/device.cu). A build without
// CUDA links src/gpu/no_device.cpp instead, whose device throws gpu::error.
#include <cstddef>
#include <memory>
#include <string>

#include "sigprop/validation/batched/job.hpp"
#include "sigprop/validation/sweep/point.hpp"

namespace sigprop::validation::gpu {

/// A GPU that is missing, or a CUDA, cuBLAS or Thrust call that failed, named in the
/// message. A sweep_error, so the tools report it in one line and exit with status 2.
class error : public sweep_error {
public:
    using sweep_error::sweep_error;
};

struct options {
    /// Let cuBLAS use TF32 tensor cores for the FP32 GEMMs (10-bit mantissa inputs):
    /// faster, but the products carry relative errors near 1e-3 (docs/GPU.md).
    bool tf32{false};
};

/// Time of one attention experiment next to the bare cuBLAS GEMMs it contains.
struct attention_timing {
    double experiment_ms{0};  ///< whole experiment: sampling, GEMMs, softmax, sums, copy back
    double gemm_ms{0};        ///< the same GEMMs alone, replayed on the same buffers
    int gemms{0};             ///< strided-batched GEMM calls per experiment
    double gemm_flops{0};     ///< floating-point operations of those GEMMs
};

/// The first CUDA device, a cuBLAS handle and the buffers of one batch (reused by every
/// experiment, so a sweep never holds more than one batch).
class device {
public:
    /// Throws gpu::error when there is no usable GPU (or no CUDA in this build).
    explicit device(options o = {});
    ~device();
    device(const device&) = delete;
    device& operator=(const device&) = delete;

    std::string name() const;
    /// Runs one experiment (every sequence as one batch) in FP32.
    batched::experiment_sums run(const batched::attention_job& j);
    batched::experiment_sums run(const batched::pointwise_job& j);
    batched::experiment_sums run(const batched::linear_job& j);
    batched::experiment_sums run(const batched::softmax_job& j);
    batched::experiment_sums run(const batched::layer_norm_job& j);
    /// Times `repeats` experiments of j against the bare GEMMs (after one warm-up).
    attention_timing time_attention(const batched::attention_job& j, int repeats);
    /// Bytes of the batch buffers now held.
    std::size_t workspace_bytes() const;
    /// The most device memory seen in use (cudaMemGetInfo) after an experiment.
    std::size_t peak_used_bytes() const;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace sigprop::validation::gpu
