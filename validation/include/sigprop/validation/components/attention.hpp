#pragma once
// Monte-Carlo model of sigprop::attention: single-head scaled dot-product attention with
// real random projections (fresh per sequence), dropout on the attention probabilities and
// a hand-written backward.
#include <cmath>
#include <cstdint>

#include <Eigen/Core>

#include "sigprop/components/attention.hpp"
#include "sigprop/validation/experiment.hpp"
#include "sigprop/validation/ops/softmax.hpp"

namespace sigprop::validation {

/// Q = X Wq, K = X Wk, V = X Wv; A = Q K^T / sqrt(d_head); P = softmax of each row of A
/// (over the L keys); Pd = P * mask / (1 - p); Y = Pd V. Matrices whose name ends in `t`
/// hold the transpose (key j, query i), because ops::softmax_columns normalises columns.
struct attention_model {
    attention<double> c;
    Eigen::MatrixXd wq, wk, wv, q, k, v, pt, mt;

    Eigen::MatrixXd forward(sequence_streams& st, const Eigen::MatrixXd& x) {
        wq.resize(c.d_in, c.d_head);
        wk.resize(c.d_in, c.d_head);
        wv.resize(c.d_in, c.d_head);
        sample_weights(wq, c.sigma_q, st);
        sample_weights(wk, c.sigma_k, st);
        sample_weights(wv, c.sigma_v, st);
        q = x * wq;
        k = x * wk;
        v = x * wv;
        const double scale = 1.0 / std::sqrt(double(c.d_head));
        pt = ops::softmax_columns((k * q.transpose()) * scale);
        // Inverted dropout, one independent mask entry per attention probability:
        // kept (probability 1 - p) entries are scaled by 1 / (1 - p). Without dropout the
        // mask is all ones and is neither drawn nor applied.
        const auto L = x.rows();
        if (c.p == 0) {
            mt.resize(0, 0);
            return pt.transpose() * v;
        }
        mt.resize(L, L);
        st.masks.fill_uniform(mt.data(), std::uint64_t(mt.size()));
        const double keep = 1.0 / (1.0 - c.p);
        mt = (mt.array() > c.p).select(Eigen::MatrixXd::Constant(L, L, keep), 0.0);
        return (pt.cwiseProduct(mt)).transpose() * v;
    }

    /// P with the dropout mask applied (P itself without dropout); columns are queries.
    Eigen::MatrixXd dropped() const { return mt.size() ? Eigen::MatrixXd(pt.cwiseProduct(mt)) : pt; }

    // dV = Pd^T G; dPd = G V^T; dP = dPd * mask / (1 - p); dA = P * (dP - rowsum(P * dP));
    // dQ = dA K / sqrt(d_head); dK = dA^T Q / sqrt(d_head); dX = dQ Wq^T + dK Wk^T + dV Wv^T.
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const {
        const double scale = 1.0 / std::sqrt(double(c.d_head));
        const Eigen::MatrixXd dv = dropped() * g;
        const Eigen::MatrixXd dpt = mt.size() ? Eigen::MatrixXd((v * g.transpose()).cwiseProduct(mt))
                                              : Eigen::MatrixXd(v * g.transpose());
        const Eigen::MatrixXd dat = ops::softmax_columns_backward(pt, dpt);
        const Eigen::MatrixXd dq = (dat.transpose() * k) * scale;
        const Eigen::MatrixXd dk = (dat * q) * scale;
        return dq * wq.transpose() + dk * wk.transpose() + dv * wv.transpose();
    }
};

/// Measures single-head attention; in.width is set to c.d_in and in.tokens to c.L.
inline measurement measure(const attention<double>& c, experiment_input in, const run_options& o) {
    in.width = c.d_in;
    in.tokens = c.L;
    attention_model m{c, {}, {}, {}, {}, {}, {}, {}, {}};
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
