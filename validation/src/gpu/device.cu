// The GPU backend's device: CUDA device selection, the cuBLAS handle, the batch buffers,
// and the batched experiments (batched/attention.hpp, batched/dense.hpp,
// batched/normalising.hpp) run through cuda_backend.
#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include <thrust/system_error.h>

#include "sigprop/validation/batched/attention.hpp"
#include "sigprop/validation/batched/dense.hpp"
#include "sigprop/validation/batched/normalising.hpp"
#include "sigprop/validation/gpu/backend.cuh"
#include "sigprop/validation/gpu/device.hpp"

namespace sigprop::validation::gpu {

struct device::impl {
    cuda_backend be;
    batched::workspace<float> ws;
    std::string name;
    std::size_t peak{0};

    void note_memory() {
        std::size_t free = 0, total = 0;
        check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
        peak = std::max(peak, total - free);
    }

    /// Runs f, turning Thrust's and the allocator's exceptions into gpu::error.
    template <class F>
    auto guarded(const char* what, F f) {
        try {
            return f();
        } catch (const thrust::system_error& e) {
            throw error(std::string(what) + ": Thrust failed: " + e.what());
        } catch (const std::bad_alloc&) {
            throw error(std::string(what) + ": out of device memory (" + std::to_string(ws.bytes() >> 20) +
                        " MiB of buffers held)");
        }
    }

    /// Runs one batched experiment and waits for it.
    template <class Job>
    batched::experiment_sums run(const Job& j) {
        return guarded("experiment", [&] {
            auto r = batched::run(be, j, ws);
            check(cudaDeviceSynchronize(), "cudaDeviceSynchronize after the experiment");
            note_memory();
            return r;
        });
    }
};

device::device(options o) : impl_(std::make_unique<impl>()) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
        throw error(std::string("no usable CUDA device (cudaGetDeviceCount: ") + cudaGetErrorString(e) + ")");
    if (count == 0) throw error("no usable CUDA device (cudaGetDeviceCount found none)");
    check(cudaSetDevice(0), "cudaSetDevice");
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    impl_->name = prop.name;
    check(cublasCreate(&impl_->be.handle), "cublasCreate");
    // FP32 unless asked: CUBLAS_DEFAULT_MATH keeps full single precision.
    check(cublasSetMathMode(impl_->be.handle, o.tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
          "cublasSetMathMode");
}

device::~device() {
    if (impl_ && impl_->be.handle) cublasDestroy(impl_->be.handle);  // nothing to report at exit
}

std::string device::name() const { return impl_->name; }
std::size_t device::workspace_bytes() const { return impl_->ws.bytes(); }
std::size_t device::peak_used_bytes() const { return impl_->peak; }

batched::experiment_sums device::run(const batched::attention_job& j) { return impl_->run(j); }
batched::experiment_sums device::run(const batched::pointwise_job& j) { return impl_->run(j); }
batched::experiment_sums device::run(const batched::linear_job& j) { return impl_->run(j); }
batched::experiment_sums device::run(const batched::softmax_job& j) { return impl_->run(j); }
batched::experiment_sums device::run(const batched::layer_norm_job& j) { return impl_->run(j); }

attention_timing device::time_attention(const batched::attention_job& j, int repeats) {
    auto& m = *impl_;
    return m.guarded("attention timing", [&] {
        std::vector<gemm_call> calls;
        m.be.log = &calls;
        batched::run(m.be, j, m.ws);  // warm-up, and the GEMMs to replay
        m.be.log = nullptr;
        m.note_memory();
        cudaEvent_t start{}, stop{};
        check(cudaEventCreate(&start), "cudaEventCreate");
        check(cudaEventCreate(&stop), "cudaEventCreate");
        auto elapsed = [&](auto body) {
            check(cudaEventRecord(start), "cudaEventRecord");
            for (int r = 0; r < repeats; ++r) body();
            check(cudaEventRecord(stop), "cudaEventRecord");
            check(cudaEventSynchronize(stop), "cudaEventSynchronize");
            float ms = 0;
            check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
            return double(ms) / repeats;
        };
        attention_timing t;
        t.experiment_ms = elapsed([&] { batched::run(m.be, j, m.ws); });
        t.gemm_ms = elapsed([&] {
            for (const auto& g : calls) issue(m.be.handle, g);
        });
        check(cudaEventDestroy(start), "cudaEventDestroy");
        check(cudaEventDestroy(stop), "cudaEventDestroy");
        t.gemms = int(calls.size());
        for (const auto& g : calls) t.gemm_flops += 2.0 * g.m * g.n * double(g.k) * g.batch;
        return t;
    });
}

}  // namespace sigprop::validation::gpu
