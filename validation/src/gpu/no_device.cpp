// The GPU device of a build without CUDA (SIGPROP_CUDA=OFF): asking for one is an error
// that says how to get one.
#include "sigprop/validation/gpu/device.hpp"

namespace sigprop::validation::gpu {

struct device::impl {};

device::device(options) {
    throw error("this build has no CUDA backend (configure with -DSIGPROP_CUDA=ON where nvcc is installed)");
}
device::~device() = default;
std::string device::name() const { return {}; }
batched::experiment_sums device::run(const batched::attention_job&) { return {}; }
batched::experiment_sums device::run(const batched::pointwise_job&) { return {}; }
batched::experiment_sums device::run(const batched::linear_job&) { return {}; }
batched::experiment_sums device::run(const batched::softmax_job&) { return {}; }
batched::experiment_sums device::run(const batched::layer_norm_job&) { return {}; }
attention_timing device::time_attention(const batched::attention_job&, int) { return {}; }
std::size_t device::workspace_bytes() const { return 0; }
std::size_t device::peak_used_bytes() const { return 0; }

}  // namespace sigprop::validation::gpu
