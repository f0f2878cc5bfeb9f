#pragma once
// The batched backend on an NVIDIA GPU: cuBLAS strided-batched GEMMs and block-per-column
// softmax kernels; the rest of batched/attention.hpp runs through Thrust's CUDA system.
// Every CUDA and cuBLAS call is checked and a failure names the call (gpu::error).
#include <cstdint>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

#include "sigprop/validation/gpu/device.hpp"

namespace sigprop::validation::gpu {

inline void check(cudaError_t e, const char* call) {
    if (e != cudaSuccess) throw error(std::string(call) + " failed: " + cudaGetErrorString(e));
}

inline void check(cublasStatus_t s, const char* call) {
    if (s != CUBLAS_STATUS_SUCCESS) throw error(std::string(call) + " failed: " + cublasGetStatusString(s));
}

/// The arguments of one strided-batched GEMM, kept to replay them alone (speed checks).
struct gemm_call {
    cublasOperation_t ta, tb;
    int m, n, k;
    float alpha;
    const float* a;
    int lda;
    long long sa;
    const float* b;
    int ldb;
    long long sb;
    float* c;
    int ldc;
    long long sc;
    int batch;
};

inline void issue(cublasHandle_t h, const gemm_call& g) {
    const float zero = 0;
    check(cublasSgemmStridedBatched(h, g.ta, g.tb, g.m, g.n, g.k, &g.alpha, g.a, g.lda, g.sa, g.b, g.ldb, g.sb,
                                    &zero, g.c, g.ldc, g.sc, g.batch),
          "cublasSgemmStridedBatched");
}

namespace detail {

constexpr int softmax_threads = 256;

struct max_op {
    __device__ float operator()(float a, float b) const { return a > b ? a : b; }
};

/// One block per column: max, exponentials and their sum, normalisation (in place).
__global__ void softmax_columns_kernel(float* z, int L) {
    using reduce = cub::BlockReduce<float, softmax_threads>;
    __shared__ typename reduce::TempStorage tmp;
    __shared__ float shared;
    float* col = z + std::uint64_t(blockIdx.x) * std::uint64_t(L);
    float m = -INFINITY;
    for (int i = threadIdx.x; i < L; i += softmax_threads) m = fmaxf(m, col[i]);
    m = reduce(tmp).Reduce(m, max_op{});
    if (threadIdx.x == 0) shared = m;
    __syncthreads();
    m = shared;
    float s = 0;
    for (int i = threadIdx.x; i < L; i += softmax_threads) {
        const float e = expf(col[i] - m);
        col[i] = e;
        s += e;
    }
    __syncthreads();  // every thread has read `shared` before it is written again
    s = reduce(tmp).Sum(s);
    if (threadIdx.x == 0) shared = s;
    __syncthreads();
    const float inv = 1.0f / shared;
    for (int i = threadIdx.x; i < L; i += softmax_threads) col[i] *= inv;
}

/// One block per column: d = p * (d - sum(p * d)) (in place).
__global__ void softmax_columns_backward_kernel(const float* p, float* d, int L) {
    using reduce = cub::BlockReduce<float, softmax_threads>;
    __shared__ typename reduce::TempStorage tmp;
    __shared__ float shared;
    const std::uint64_t off = std::uint64_t(blockIdx.x) * std::uint64_t(L);
    float dot = 0;
    for (int i = threadIdx.x; i < L; i += softmax_threads) dot += p[off + i] * d[off + i];
    dot = reduce(tmp).Sum(dot);
    if (threadIdx.x == 0) shared = dot;
    __syncthreads();
    dot = shared;
    for (int i = threadIdx.x; i < L; i += softmax_threads) d[off + i] = p[off + i] * (d[off + i] - dot);
}

}  // namespace detail

struct cuda_backend {
    using scalar = float;

    cublasHandle_t handle{};
    std::vector<gemm_call>* log{nullptr};  ///< when set, every GEMM is also recorded here

    void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const float* a, int lda, long long sa,
              const float* b, int ldb, long long sb, float* c, int ldc, long long sc, int batch) const {
        const gemm_call g{ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, float(alpha),
                          a, lda, sa, b, ldb, sb, c, ldc, sc, batch};
        issue(handle, g);
        if (log) log->push_back(g);
    }

    void softmax_columns(float* z, int L, std::uint64_t columns) const {
        detail::softmax_columns_kernel<<<unsigned(columns), detail::softmax_threads>>>(z, L);
        check(cudaGetLastError(), "softmax_columns_kernel launch");
    }

    void softmax_columns_backward(const float* p, float* d, int L, std::uint64_t columns) const {
        detail::softmax_columns_backward_kernel<<<unsigned(columns), detail::softmax_threads>>>(p, d, L);
        check(cudaGetLastError(), "softmax_columns_backward_kernel launch");
    }
};

}  // namespace sigprop::validation::gpu
