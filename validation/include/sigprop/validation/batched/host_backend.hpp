#pragma once
// The batched backend on the CPU: Eigen GEMMs (one per sequence, spread over the cores
// with OpenMP) and the column softmax functors mapped with Thrust. Compiled by g++ with
// THRUST_DEVICE_SYSTEM=THRUST_DEVICE_SYSTEM_OMP, it runs the batched experiments' Thrust
// code on the CPU, which is how the default tests check the code the GPU runs.
#include <cstdint>

#include <Eigen/Core>

#include "sigprop/validation/batched/reduce.hpp"
#include "sigprop/validation/batched/softmax.hpp"

namespace sigprop::validation::batched {

template <class T>
struct host_backend {
    using scalar = T;

    /// C_b = alpha op(A_b) op(B_b) for b < batch (column-major, cuBLAS's conventions).
    void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const T* a, int lda, long long sa,
              const T* b, int ldb, long long sb, T* c, int ldc, long long sc, int batch) const {
        using mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;
        using cmap = Eigen::Map<const mat, 0, Eigen::OuterStride<>>;
        using map = Eigen::Map<mat, 0, Eigen::OuterStride<>>;
#pragma omp parallel for schedule(static)
        for (int i = 0; i < batch; ++i) {
            const cmap A(a + i * sa, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
            const cmap B(b + i * sb, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
            map C(c + i * sc, m, n, Eigen::OuterStride<>(ldc));
            const T s = T(alpha);
            if (ta && tb) C.noalias() = s * (A.transpose() * B.transpose());
            else if (ta) C.noalias() = s * (A.transpose() * B);
            else if (tb) C.noalias() = s * (A * B.transpose());
            else C.noalias() = s * (A * B);
        }
    }

    void softmax_columns(T* z, int L, std::uint64_t columns) const {
        for_each_index(columns, softmax_column<T>{z, L});
    }

    void softmax_columns_backward(const T* p, T* d, int L, std::uint64_t columns) const {
        for_each_index(columns, softmax_column_backward<T>{p, d, L});
    }
};

}  // namespace sigprop::validation::batched
