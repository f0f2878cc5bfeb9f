#pragma once
// Equicorrelated Gaussian samples with requested (mean, var, corr) between tokens.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <Eigen/Core>

#include "sigprop/core/moments.hpp"
#include "sigprop/validation/philox.hpp"

namespace sigprop::validation {

/// Fills x (tokens x columns) with x[i,k] = mu + s (sqrt(r) z0[k] + sqrt(1 - r) z[i,k]),
/// z0 and z i.i.d. standard normal, z0 shared by the tokens of one column (REFERENCE.md
/// section 1). A negative r (at least -1/(L - 1), the least an equicorrelated law allows)
/// uses x[i,k] = mu + a z[i,k] + b sum_j z[j,k] with a = s sqrt(1 - r) and
/// b = s (sqrt(1 + (L - 1) r) - sqrt(1 - r)) / L, which has the same two moments.
inline void sample_equicorrelated(Eigen::Ref<Eigen::MatrixXd> x, double mean, double var,
                                  double corr, normal_sequence& rng) {
    const Eigen::Index L = x.rows();
    const double s = std::sqrt(var);
    rng.fill(x.data(), std::uint64_t(x.size()));  // column-major: contiguous
    if (corr >= 0) {
        const double a = s * std::sqrt(1 - corr);
        const double c = s * std::sqrt(corr);
        for (Eigen::Index k = 0; k < x.cols(); ++k) {
            const double shared = c * rng.next();
            x.col(k) = (x.col(k).array() * a + shared + mean).matrix();
        }
    } else {
        const double lo = -1.0 / double(L - 1);
        if (corr < lo - 1e-15)
            throw std::invalid_argument("sample_equicorrelated: corr below -1/(L-1)");
        const double a = s * std::sqrt(1 - corr);
        const double b = s * (std::sqrt(std::max(0.0, 1 + double(L - 1) * corr)) - std::sqrt(1 - corr)) / double(L);
        for (Eigen::Index k = 0; k < x.cols(); ++k) {
            const double sum = x.col(k).sum();
            x.col(k) = (x.col(k).array() * a + b * sum + mean).matrix();
        }
    }
}

/// Forward moments as a sample request.
inline void sample_signal(Eigen::Ref<Eigen::MatrixXd> x, const signal<double>& m,
                          normal_sequence& rng) {
    sample_equicorrelated(x, m.mean, m.var, m.corr, rng);
}

/// Gradient moments as a sample request (mean zero).
inline void sample_gradient(Eigen::Ref<Eigen::MatrixXd> g, const gradient<double>& m,
                            normal_sequence& rng) {
    sample_equicorrelated(g, 0.0, m.var, m.corr, rng);
}

}  // namespace sigprop::validation
