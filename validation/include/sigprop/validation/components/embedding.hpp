#pragma once
// Monte-Carlo model of sigprop::embedding: token ids are drawn (or read from a corpus), every
// table gets fresh N(0, sigma^2) rows for each sequence, the output is the sum of the
// looked-up rows, and the backward scatters the incoming gradient into the tables.
// The experiment_input / simulate driver is made for components with an input signal;
// the embedding has none, so this header has its own small driver.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include <Eigen/Core>

#include "sigprop/core/moments.hpp"
#include "sigprop/validation/estimator.hpp"
#include "sigprop/validation/experiment.hpp"
#include "sigprop/validation/sampler.hpp"

namespace sigprop::validation {

/// One table of the model and how its rows are chosen: if `unigram` is non-empty, the id of
/// every position is drawn i.i.d. from it (weights, normalised here); otherwise sequence s
/// looks up the rows `sequences[s % sequences.size()]` (each of length L). A table of
/// absolute positions is sequences = {{0, 1, ..., L - 1}}; a corpus of real token ids or a
/// fixed segment layout is given the same way.
struct embedding_table_spec {
    double sigma{1};
    std::vector<double> unigram;
    std::vector<std::vector<int>> sequences;
};

struct embedding_model {
    std::vector<embedding_table_spec> tables;
    int width{1};
    // State of the latest forward, per table: the slot (index among the distinct rows the
    // sequence uses) of every position, and the rows themselves (distinct rows x width).
    // Rows that no position looks up never enter the output or receive a gradient, so only
    // the rows used are drawn: the same law as drawing the whole table.
    std::vector<std::vector<int>> slot;
    std::vector<Eigen::MatrixXd> w;

    /// Draws ids and rows for sequence `sequence` of `tokens` positions; returns Y (tokens x width).
    Eigen::MatrixXd forward(sequence_streams& st, int tokens, int sequence) {
        slot.resize(tables.size());
        w.resize(tables.size());
        std::vector<int> ids(static_cast<std::size_t>(tokens)), distinct;
        for (std::size_t t = 0; t < tables.size(); ++t) {
            draw_ids(tables[t], st, t, sequence, ids);
            distinct = ids;
            std::sort(distinct.begin(), distinct.end());
            distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
            slot[t].resize(ids.size());
            for (std::size_t i = 0; i < ids.size(); ++i)
                slot[t][i] = int(std::lower_bound(distinct.begin(), distinct.end(), ids[i]) - distinct.begin());
            w[t].resize(Eigen::Index(distinct.size()), width);
            sample_weights(w[t], tables[t].sigma, st);
        }
        return lookup();
    }

    /// Y[i,:] = sum_t W_t[row_t(i), :] from the current rows.
    Eigen::MatrixXd lookup() const {
        const Eigen::Index L = slot.empty() ? 0 : Eigen::Index(slot[0].size());
        Eigen::MatrixXd y = Eigen::MatrixXd::Zero(L, width);
        for (std::size_t t = 0; t < tables.size(); ++t)
            for (Eigen::Index i = 0; i < L; ++i) y.row(i) += w[t].row(slot[t][std::size_t(i)]);
        return y;
    }

    /// dL/dW_t for loss sum(Y * G): row k of table t gathers the gradients of the positions
    /// that look it up (a scatter-add). One matrix per table, shaped like w[t].
    std::vector<Eigen::MatrixXd> backward(const Eigen::MatrixXd& g) const {
        std::vector<Eigen::MatrixXd> dw(tables.size());
        for (std::size_t t = 0; t < tables.size(); ++t) {
            dw[t] = Eigen::MatrixXd::Zero(w[t].rows(), w[t].cols());
            for (Eigen::Index i = 0; i < g.rows(); ++i) dw[t].row(slot[t][std::size_t(i)]) += g.row(i);
        }
        return dw;
    }

private:
    // Unigram ids by inversion of the cumulative law, with uniform number t * L + i of the
    // sequence's mask stream for position i of table t.
    static void draw_ids(const embedding_table_spec& spec, sequence_streams& st, std::size_t t,
                         int sequence, std::vector<int>& ids) {
        const std::size_t L = ids.size();
        if (spec.unigram.empty()) {
            const auto& rows = spec.sequences.at(std::size_t(sequence) % spec.sequences.size());
            if (rows.size() != L) throw std::invalid_argument("embedding_model: a sequence has the wrong length");
            std::copy(rows.begin(), rows.end(), ids.begin());
            return;
        }
        std::vector<double> cdf(spec.unigram.size());
        double sum = 0;
        for (std::size_t k = 0; k < cdf.size(); ++k) cdf[k] = sum += spec.unigram[k];
        for (double& c : cdf) c /= sum;
        cdf.back() = 1.0;
        for (std::size_t i = 0; i < L; ++i) {
            const double u = st.masks.uniform(std::uint64_t(t * L + i));
            ids[i] = int(std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
        }
    }
};

/// What the embedding experiment measures: the output moments and, per table, the squared
/// Frobenius norm of its weight gradient for one sequence (mean over the sequences and its
/// standard error; sequences are independent, so the error is the sample's sd / sqrt(n)).
struct embedding_measurement {
    measured_moments y;
    std::vector<measured> weight_grad_sq_norm;
};

/// Runs o.sequences sequences of `tokens` positions and `width` units; the gradient at the
/// output is sampled with moments g (mean zero) and is independent of the ids.
inline embedding_measurement measure(const std::vector<embedding_table_spec>& tables, int tokens, int width,
                                     const gradient<double>& g, const run_options& o) {
    if (tables.empty() || tokens < 2 || width < 1 || o.sequences < 2 || o.blocks < 2)
        throw std::invalid_argument("embedding measure: need tables, tokens >= 2, width >= 1, sequences >= 2, blocks >= 2");
    const int blocks = o.blocks < o.sequences ? o.blocks : o.sequences;
    moment_accumulator fwd(tokens, blocks);
    embedding_model m{tables, width, {}, {}};
    std::vector<double> sum(tables.size(), 0.0), sum2(tables.size(), 0.0);
    Eigen::MatrixXd gy(tokens, width);
    for (int s = 0; s < o.sequences; ++s) {
        auto st = streams_for(o, s);
        fwd.add(m.forward(st, tokens, s), s % blocks);
        sample_gradient(gy, g, st.grad);
        const auto dw = m.backward(gy);
        for (std::size_t t = 0; t < tables.size(); ++t) {
            const double v = dw[t].squaredNorm();
            sum[t] += v;
            sum2[t] += v * v;
        }
    }
    embedding_measurement r{fwd.result(), {}};
    const double n = o.sequences;
    for (std::size_t t = 0; t < tables.size(); ++t) {
        const double mean = sum[t] / n;
        const double var = std::max(0.0, (sum2[t] - n * mean * mean) / (n - 1));
        r.weight_grad_sq_norm.push_back({mean, std::sqrt(var / n)});
    }
    return r;
}

}  // namespace sigprop::validation
