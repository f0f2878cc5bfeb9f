#pragma once
// The estimator of REFERENCE.md section 1: what "measured" means.
//
// Data arrive as matrices with one row per token (L rows) and one column per
// (sequence, unit) sample. Over all elements: mean = E[x] and var = E[x^2] - E[x]^2.
// Between tokens: for every pair i != j the sample covariance of rows i and j over all
// columns, averaged over the pairs; corr = cov / var.
//
// Everything is accumulated in double from sufficient statistics, so memory does not grow
// with the number of samples: per block, the count of columns N, sum x^2, sum over
// columns of the squared column sum, and the per-token sums t_i. The average pair
// covariance follows from
//   sum_{i != j} C_ij = [ sum_n (S_n^2 - sum_i x_in^2) - ((sum_i t_i)^2 - sum_i t_i^2) / N ] / (N - 1)
// with S_n the column sum. Samples are spread over a fixed number of blocks that are
// statistically independent (a block never shares random weights with another), and the
// standard error of every estimate is the delete-one-block jackknife.
#include <array>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <vector>

#include <Eigen/Core>

namespace sigprop::validation {

/// A measured quantity and its standard error.
struct measured {
    double value{0};
    double se{0};
};

/// The measured moments of one activation or gradient.
struct measured_moments {
    measured mean, var, cov, corr;
};

class moment_accumulator {
public:
    /// tokens: rows of every matrix added; blocks: number of independent blocks (>= 2).
    moment_accumulator(int tokens, int blocks) : L_(tokens), blocks_(blocks) {
        if (tokens < 2) throw std::invalid_argument("moment_accumulator: tokens must be >= 2");
        if (blocks < 2) throw std::invalid_argument("moment_accumulator: blocks must be >= 2");
        stats_.assign(std::size_t(blocks), block_stats{});
        for (auto& b : stats_) b.t.assign(std::size_t(tokens), 0.0);
    }

    int tokens() const noexcept { return L_; }
    int blocks() const noexcept { return blocks_; }

    /// Adds the columns of x (tokens x samples) to block `block`.
    void add(const Eigen::Ref<const Eigen::MatrixXd>& x, int block) {
        if (x.rows() != L_) throw std::invalid_argument("moment_accumulator: wrong number of rows");
        auto& b = stats_.at(std::size_t(block));
        b.n += double(x.cols());
        b.x2 += x.squaredNorm();
        b.s2 += x.colwise().sum().squaredNorm();
        Eigen::Map<Eigen::VectorXd> t(b.t.data(), L_);
        t += x.rowwise().sum();
    }

    /// Adds precomputed sums of `columns` columns to block `block`: x2 = sum of squares,
    /// s2 = sum over columns of the squared column sum, t[i] = sum over columns of row i.
    /// The batched backends (batched/) reduce on the device and hand over only these.
    void add_sums(int block, double columns, double x2, double s2, const double* t) {
        auto& b = stats_.at(std::size_t(block));
        b.n += columns;
        b.x2 += x2;
        b.s2 += s2;
        for (int i = 0; i < L_; ++i) b.t[std::size_t(i)] += t[i];
    }

    /// Merges another accumulator of the same shape (e.g. from another thread).
    void merge(const moment_accumulator& o) {
        if (o.L_ != L_ || o.blocks_ != blocks_)
            throw std::invalid_argument("moment_accumulator: merging different shapes");
        for (std::size_t k = 0; k < stats_.size(); ++k) {
            stats_[k].n += o.stats_[k].n;
            stats_[k].x2 += o.stats_[k].x2;
            stats_[k].s2 += o.stats_[k].s2;
            for (int i = 0; i < L_; ++i) stats_[k].t[std::size_t(i)] += o.stats_[k].t[std::size_t(i)];
        }
    }

    /// The estimates with jackknife standard errors. Needs samples in >= 2 blocks.
    measured_moments result() const {
        block_stats all = total();
        const estimate full = evaluate(all);
        std::vector<estimate> leave;
        for (const auto& b : stats_) {
            if (b.n == 0) continue;
            block_stats rest = all;
            rest.n -= b.n;
            rest.x2 -= b.x2;
            rest.s2 -= b.s2;
            for (int i = 0; i < L_; ++i) rest.t[std::size_t(i)] -= b.t[std::size_t(i)];
            leave.push_back(evaluate(rest));
        }
        if (leave.size() < 2)
            throw std::logic_error("moment_accumulator: need samples in at least two blocks");
        const double g = double(leave.size());
        auto se = [&](double estimate::*m) {
            double avg = 0;
            for (const auto& e : leave) avg += e.*m;
            avg /= g;
            double ss = 0;
            for (const auto& e : leave) ss += (e.*m - avg) * (e.*m - avg);
            return std::sqrt((g - 1) / g * ss);
        };
        return {{full.mean, se(&estimate::mean)},
                {full.var, se(&estimate::var)},
                {full.cov, se(&estimate::cov)},
                {full.corr, se(&estimate::corr)}};
    }

    /// The estimates from the even-numbered and from the odd-numbered blocks alone (no
    /// standard errors): two independent half-size measurements. Their difference shows
    /// the measurement's own noise, whatever the formula says.
    std::array<measured_moments, 2> halves() const {
        std::array<measured_moments, 2> h{};
        for (int parity = 0; parity < 2; ++parity) {
            block_stats part;
            part.t.assign(std::size_t(L_), 0.0);
            for (std::size_t k = std::size_t(parity); k < stats_.size(); k += 2) {
                part.n += stats_[k].n;
                part.x2 += stats_[k].x2;
                part.s2 += stats_[k].s2;
                for (int i = 0; i < L_; ++i) part.t[std::size_t(i)] += stats_[k].t[std::size_t(i)];
            }
            if (part.n < 2) throw std::logic_error("moment_accumulator: a half has no samples");
            const estimate e = evaluate(part);
            h[std::size_t(parity)] = {{e.mean, 0}, {e.var, 0}, {e.cov, 0}, {e.corr, 0}};
        }
        return h;
    }

private:
    struct block_stats {
        double n{0}, x2{0}, s2{0};
        std::vector<double> t;
    };
    struct estimate {
        double mean, var, cov, corr;
    };

    block_stats total() const {
        block_stats a;
        a.t.assign(std::size_t(L_), 0.0);
        for (const auto& b : stats_) {
            a.n += b.n;
            a.x2 += b.x2;
            a.s2 += b.s2;
            for (int i = 0; i < L_; ++i) a.t[std::size_t(i)] += b.t[std::size_t(i)];
        }
        return a;
    }

    estimate evaluate(const block_stats& b) const {
        const double L = L_;
        double sum = 0, tt = 0;
        for (double ti : b.t) {
            sum += ti;
            tt += ti * ti;
        }
        const double n = b.n;
        const double mean = sum / (L * n);
        const double var = b.x2 / (L * n) - mean * mean;
        const double pair_sum = ((b.s2 - b.x2) - (sum * sum - tt) / n) / (n - 1);
        const double cov = pair_sum / (L * (L - 1));
        return {mean, var, cov, cov / var};
    }

    int L_;
    int blocks_;
    std::vector<block_stats> stats_;
};

}  // namespace sigprop::validation
