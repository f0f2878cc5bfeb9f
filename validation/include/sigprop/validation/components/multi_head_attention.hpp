#pragma once
// Monte-Carlo model of sigprop::multi_head_attention: real random Wq, Wk, Wv per head and
// Wo (fresh per sequence), optional causal mask, dropout on the attention probabilities,
// and a hand-written backward.
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include <Eigen/Core>

#include "sigprop/components/multi_head_attention.hpp"
#include "sigprop/validation/experiment.hpp"
#include "sigprop/validation/ops/softmax.hpp"

namespace sigprop::validation {

/// Per head h: Q = X Wq_h, K = X Wk_h, V = X Wv_h; A = Q K^T / sqrt(d_head) with A_ij = -inf
/// for j > i when causal; P = softmax of each row; Pd = P * mask / (1 - p); Y_h = Pd V.
/// Output: [Y_1 ... Y_h] Wo. As in attention_model, `pt` holds P transposed (key j, query i).
/// Weights are drawn per head in the order Wq, Wk, Wv, then Wo; mask entries of head h are
/// uniforms h L^2 .. (h+1) L^2 - 1 of the sequence's mask stream.
struct multi_head_attention_model {
    multi_head_attention<double> c;
    struct head {
        Eigen::MatrixXd wq, wk, wv, q, k, v, pt, mt;
    };
    std::vector<head> hs;
    Eigen::MatrixXd wo;

    Eigen::MatrixXd forward(sequence_streams& st, const Eigen::MatrixXd& x) {
        const int dh = c.d_model / c.heads;
        const auto L = x.rows();
        const double scale = 1.0 / std::sqrt(double(dh));
        hs.resize(std::size_t(c.heads));
        Eigen::MatrixXd concat(L, c.d_model);
        for (int h = 0; h < c.heads; ++h) {
            head& hd = hs[std::size_t(h)];
            for (Eigen::MatrixXd* w : {&hd.wq, &hd.wk, &hd.wv}) w->resize(c.d_model, dh);
            sample_weights(hd.wq, c.sigma_q, st);
            sample_weights(hd.wk, c.sigma_k, st);
            sample_weights(hd.wv, c.sigma_v, st);
            hd.q = x * hd.wq;
            hd.k = x * hd.wk;
            hd.v = x * hd.wv;
            Eigen::MatrixXd at = (hd.k * hd.q.transpose()) * scale;  // (key j, query i)
            if (c.causal)
                for (Eigen::Index i = 0; i < L; ++i)
                    for (Eigen::Index j = i + 1; j < L; ++j) at(j, i) = -std::numeric_limits<double>::infinity();
            hd.pt = ops::softmax_columns(at);
            // A vectorised exp may return a denormal for -inf: masked entries are set to 0.
            if (c.causal)
                for (Eigen::Index i = 0; i < L; ++i) hd.pt.col(i).tail(L - 1 - i).setZero();
            if (c.p == 0) {
                hd.mt.resize(0, 0);
                concat.middleCols(h * dh, dh) = hd.pt.transpose() * hd.v;
                continue;
            }
            hd.mt.resize(L, L);
            const std::uint64_t base = std::uint64_t(h) * std::uint64_t(L * L);
            const double keep = 1.0 / (1.0 - c.p);
            for (Eigen::Index n = 0; n < hd.mt.size(); ++n)
                hd.mt.data()[n] = st.masks.uniform(base + std::uint64_t(n)) > c.p ? keep : 0.0;
            concat.middleCols(h * dh, dh) = hd.pt.cwiseProduct(hd.mt).transpose() * hd.v;
        }
        wo.resize(c.d_model, c.d_model);
        sample_weights(wo, c.sigma_o, st);
        return concat * wo;
    }

    // dY = G Wo^T, split into the heads' blocks; per head as attention_model:
    // dV = Pd^T dY_h; dPd = dY_h V^T; dP = dPd * mask / (1 - p); dA = P * (dP - rowsum(P * dP))
    // (zero on masked entries, where P = 0); dQ = dA K / sqrt(d_head); dK = dA^T Q / sqrt(d_head);
    // dX = sum over heads of dQ Wq^T + dK Wk^T + dV Wv^T.
    Eigen::MatrixXd backward(const Eigen::MatrixXd& g) const {
        const int dh = c.d_model / c.heads;
        const double scale = 1.0 / std::sqrt(double(dh));
        const Eigen::MatrixXd dy = g * wo.transpose();
        Eigen::MatrixXd dx = Eigen::MatrixXd::Zero(g.rows(), c.d_model);
        for (int h = 0; h < c.heads; ++h) {
            const head& hd = hs[std::size_t(h)];
            const Eigen::MatrixXd gh = dy.middleCols(h * dh, dh);
            const bool drop = hd.mt.size() != 0;
            const Eigen::MatrixXd pd = drop ? Eigen::MatrixXd(hd.pt.cwiseProduct(hd.mt)) : hd.pt;
            const Eigen::MatrixXd dv = pd * gh;
            const Eigen::MatrixXd dpt = drop ? Eigen::MatrixXd((hd.v * gh.transpose()).cwiseProduct(hd.mt))
                                             : Eigen::MatrixXd(hd.v * gh.transpose());
            const Eigen::MatrixXd dat = ops::softmax_columns_backward(hd.pt, dpt);
            const Eigen::MatrixXd dq = (dat.transpose() * hd.k) * scale;
            const Eigen::MatrixXd dk = (dat * hd.q) * scale;
            dx += dq * hd.wq.transpose() + dk * hd.wk.transpose() + dv * hd.wv.transpose();
        }
        return dx;
    }
};

/// Measures multi-head attention; in.width is set to c.d_model and in.tokens to c.L.
inline measurement measure(const multi_head_attention<double>& c, experiment_input in, const run_options& o) {
    in.width = c.d_model;
    in.tokens = c.L;
    multi_head_attention_model m{c, {}, {}};
    return simulate(m, in, o);
}

}  // namespace sigprop::validation
