#pragma once
// predict_resolved(spec): the whole trajectory (forward, backward and weight-gradient
// norms) of an encoder or (causal) decoder stack from position-resolved states: the
// forward of resolved.hpp, and a backward that carries the full L x L covariance of one
// unit of the gradient instead of one variance and one pair correlation. Derivation,
// assumptions and measured accuracy: docs/theory/models.md, section 10.
//
// Why: in a causal stack key j receives gradient from the queries i >= j only, each with
// weight ~ 1/i, so the value path piles the gradient onto the first tokens (token 1 gets
// sum_i P2_i G_i / i, the last token P2_L G_L / L); the next block down weights those
// early rows by their larger E sum_j P_ij^2 and LayerNorm divides by each token's own
// variance. predict() pools over positions after every block and under-predicts the
// gradient's growth towards the input (48-layer Pre-LN decoder: 41 % low at the input).
//
// Cost: the forward's (O(layers L^2) pair maps), plus O(L^2) per block for the backward
// (2-D suffix sums), and memory for four L x L matrices per block.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "sigprop/models/resolved.hpp"

namespace sigprop {

namespace detail {

/// sum_ij a_ij b_ij: the weight-gradient norm's double sum over positions.
template <class T>
T frobenius_dot(const resolved_state<T>& a, const resolved_state<T>& b) noexcept {
    T sum = 0;
    for (std::size_t k = 0; k < a.c.size(); ++k) sum += mul0(a.c[k], b.c[k]);
    return sum;
}

/// E||dW||_F^2 = d_in d_out sum_ij E[x_i x_j] E[g_i g_j] for y = x W (x: one input unit,
/// g: one output unit; independent at initialisation, as weight_grad_norm assumes). The
/// sum is >= 0 for valid moments; clamped against rounding. A sum that met an overflowed
/// entry (NaN from inf - inf) is +infinity.
template <class T>
T resolved_weight_norm(int d_in, int d_out, const resolved_state<T>& x, const resolved_state<T>& g) noexcept {
    const T s = frobenius_dot(x, g);
    if (s != s) return std::numeric_limits<T>::infinity();
    return s > T(0) ? mul0(T(d_in) * T(d_out), s) : T(0);
}

/// a * x + y elementwise, with 0 * inf = 0.
template <class T>
void add_scaled(const T& a, const resolved_state<T>& x, resolved_state<T>& y) noexcept {
    for (std::size_t k = 0; k < y.c.size(); ++k) y.c[k] += mul0(a, x.c[k]);
}

/// x * f elementwise (a LayerNorm's or an activation's backward factor per pair).
template <class T>
resolved_state<T> times(const resolved_state<T>& x, const resolved_state<T>& f) noexcept {
    resolved_state<T> y = x;
    for (std::size_t k = 0; k < y.c.size(); ++k) y.c[k] = x.c[k] == T(0) ? T(0) : x.c[k] * f.c[k];
    return y;
}

/// The keys' covariance over every causal prefix, which the Q and K paths need (our
/// derivation, docs/theory/models.md section 10, "row statistics"): the branch input u
/// divided by its pooled variance s2 (the paths' scales carry s2), written c below.
/// A short causal prefix is far more correlated than the block's pooled r (48-layer
/// Pre-LN decoder, layer 3's attention: the pooled r is 0.09, the two-key prefix's 0.42),
/// and both paths only see the keys' spread about their row's mean. An overflowed u is replaced by the
/// equicorrelated state of the pooled correlation (no inf - inf on the way).
template <class T>
struct key_prefixes {
    int L;
    std::size_t W;
    std::vector<T> c;           ///< c[x L + y]
    std::vector<T> sum;         ///< sum[x W + y] = sum_{a < x, b < y} c_ab (2-D prefix sums)
    std::vector<T> corr;        ///< corr[n-1]: mean pair correlation over the first n keys
    std::vector<T> spread;      ///< spread[n-1] = tr(H C_n H)/(n-1): (1 - corr) for equal variances
    std::vector<T> spread2;     ///< spread2[n-1] = |H C_n H|_F^2/(n-1): (1 - corr)^2 likewise
    // For two prefixes n <= n2 (cross_spread), with c' = c - r (r the pooled correlation:
    // the centrings annihilate constants, and c' keeps the sums from cancelling):
    std::vector<T> sq;          ///< sq[x W + y] = sum_{a < x, b < y} c'_ab^2
    std::vector<T> rows2;       ///< rows2[x W + y] = sum_{j < y} (sum_{b < x} c'_jb)^2
    T entry(int x, int y) const noexcept { return c[std::size_t(x) * std::size_t(L) + std::size_t(y)]; }
    T at(int x, int y) const noexcept { return sum[std::size_t(x) * W + std::size_t(y)]; }
    /// mean of c_jl over the first n keys l
    T row_mean(int j, int n) const noexcept { return (at(j + 1, n) - at(j, n)) / T(n); }
    /// mean of c over the first n keys times the first n2 keys
    T block_mean(int n, int n2) const noexcept { return at(n, n2) / (T(n) * T(n2)); }
    /// |H_n C_{n x n2} H_n2|_F^2: the covariances of the first n keys' deviations from their
    /// mean with the first n2 keys' deviations from theirs, squared and summed (>= 0).
    T cross_spread(int n, int n2) const noexcept {
        const std::size_t a = std::size_t(n), b = std::size_t(n2);
        const T all = at(n, n2) - shift * T(n) * T(n2);  // the sum of c' over the block
        const T v = sq[a * W + b] - rows2[b * W + a] * inv[b] - rows2[a * W + b] * inv[a] + all * all * inv[a] * inv[b];
        return v > T(0) ? v : T(0);  // >= 0 up to rounding
    }
    T shift{0};          ///< r of c' = c - r
    std::vector<T> inv;  ///< inv[n] = 1/n (inv[0] unused)
};

/// O(L^2): |H C_n H|_F^2 = sum C^2 - (2/n) sum_j (sum_l C_jl)^2 + (sum C)^2 / n^2 over the
/// first n keys, each piece updated from n - 1 in O(n) (H = I - 11'/n, the row's centring).
template <class T>
key_prefixes<T> key_prefixes_of(const resolved_state<T>& u, const signal<T>& pu) {
    const int L = u.L;
    const bool finite = pu.var > T(0) && pu.var <= std::numeric_limits<T>::max();
    key_prefixes<T> k;
    k.L = L;
    k.c.resize(u.c.size());
    for (int x = 0; x < L; ++x)
        for (int y = 0; y < L; ++y)
            k.c[std::size_t(x) * std::size_t(L) + std::size_t(y)] = finite ? u.at(x, y) / pu.var : (x == y ? T(1) : pu.corr);
    auto c = [&](int x, int y) { return k.entry(x, y); };
    k.W = std::size_t(L) + 1;
    k.sum.assign(k.W * k.W, T(0));
    for (int x = 1; x <= L; ++x)
        for (int y = 1; y <= L; ++y)
            k.sum[std::size_t(x) * k.W + std::size_t(y)] = c(x - 1, y - 1) + k.at(x - 1, y) + k.at(x, y - 1) - k.at(x - 1, y - 1);
    k.corr.assign(std::size_t(L), T(0));
    k.spread.assign(std::size_t(L), T(0));
    k.spread2.assign(std::size_t(L), T(0));
    std::vector<T> rows(std::size_t(L), T(0));  // sum_{l < n} c_jl
    T trace = 0, squares = 0;
    for (int n = 1; n <= L; ++n) {
        const int e = n - 1;  // the key that joins
        T row_e = 0;
        for (int j = 0; j < e; ++j) {
            const T v = c(j, e);
            rows[std::size_t(j)] += v;
            row_e += v;
            squares += T(2) * v * v;
        }
        row_e += c(e, e);
        rows[std::size_t(e)] = row_e;
        squares += c(e, e) * c(e, e);
        trace += c(e, e);
        if (n < 2) continue;
        T row_squares = 0;
        for (int j = 0; j < n; ++j) row_squares += rows[std::size_t(j)] * rows[std::size_t(j)];
        const T all = k.at(n, n), nn = T(n);
        const std::size_t i = std::size_t(e);
        k.corr[i] = trace > T(0) ? (all - trace) / ((nn - T(1)) * trace) : T(0);
        const T sp = (trace - all / nn) / (nn - T(1)), sp2 = (squares - T(2) * row_squares / nn + all * all / (nn * nn)) / (nn - T(1));
        k.spread[i] = sp > T(0) ? sp : T(0);  // >= 0 up to rounding
        k.spread2[i] = sp2 > T(0) ? sp2 : T(0);
    }
    k.shift = pu.corr == pu.corr ? pu.corr : T(0);
    k.inv.assign(k.W, T(0));
    for (int n = 1; n <= L; ++n) k.inv[std::size_t(n)] = T(1) / T(n);
    k.sq.assign(k.W * k.W, T(0));
    k.rows2.assign(k.W * k.W, T(0));
    std::fill(rows.begin(), rows.end(), T(0));  // now sum_{b < x} c'_jb
    for (int x = 1; x <= L; ++x) {
        // Row x - 1 of c' (c is symmetric, so it is also column x - 1).
        const T* cr = &k.c[std::size_t(x - 1) * std::size_t(L)];
        const T* above = &k.sq[std::size_t(x - 1) * k.W];
        T* sq = &k.sq[std::size_t(x) * k.W];
        T run = 0, acc = 0;
        for (int y = 1; y <= L; ++y) {
            const T v = cr[y - 1] - k.shift;
            run += v * v;
            sq[y] = above[y] + run;
            T& r = rows[std::size_t(y - 1)];
            r += v;
            acc += r * r;
            k.rows2[std::size_t(x) * k.W + std::size_t(y)] = acc;
        }
    }
    return k;
}

/// The Q path's bracket for two causal rows whose prefixes hold n <= n2 keys (the first n
/// shared), per unit of their gradient covariance: E tr(S_n S_n2) of the two prefixes'
/// token-specific scatters over the stream's per-unit variance squared (our derivation,
/// docs/theory/models.md section 10, "Query pairs"). For Gaussian tokens whose deviations
/// from the prefix means have covariances h C, C of anisotropy a (unit = a/d), with
/// T_n = tr(H C_n H) and X = |H_n C H_n2|_F^2 (key_prefixes::cross_spread):
///   [(a/d) T_n T_n2 + (1 + a/d) X] / (n n2) = (a/d) tt + (1 + a/d) x,
/// which for an equicorrelated stream is (1-r)^2 (1 - 1/n)(1/n2 + a/d), for n = n2 the
/// exact E tr(S^2). A one-key prefix has no spread: 0.
template <class T>
struct query_pair {
    T tt{0}, x{0};  ///< T_n T_n2 / (n n2), X / (n n2)
    T bracket(T unit) const noexcept { return unit * tt + (T(1) + unit) * x; }
};

template <class T>
query_pair<T> causal_query_pair(const key_prefixes<T>& kp, int n, int n2) noexcept {
    if (n < 2) return {};
    const T w = kp.inv[std::size_t(n)] * kp.inv[std::size_t(n2)];
    return {kp.spread[std::size_t(n - 1)] * T(n - 1) * kp.spread[std::size_t(n2 - 1)] * T(n2 - 1) * w,
            kp.cross_spread(n, n2) * w};
}

// Self-attention backward with a resolved gradient (our derivation, docs/theory/models.md
// section 10). g: the covariance of one unit of the gradient at the heads' concatenation.
// Row i (0-based) attends to the keys j < n_i (n_i = i + 1 causal, L otherwise); key j
// receives from the rows that cover it, i >= j causal (all rows otherwise): lo(j) = j or 0.
// With P_ij ~ 1/n_i (near-uniform) plus the pooled form::best's softmax statistics:
//   E P_ij^2 = P2_i / n_i;   E P_ij P_ik = (1 - P2_i) / (n_i (n_i - 1))   (j != k)
//   E P_ij P_i'j = e_ii' / (n_i n_i'),  e_ii' = min(e^rho col, max(n_i, n_i'))   (i != i')
//   E P_ij P_i'k = (1 - e_ii'/m) / (n_i n_i' - min(n_i, n_i')),  m = max(n_i, n_i')   (the
//   rest of sum_jk P_ij P_i'k = 1 over the other key pairs)
// give, per unit of dV,
//   V_jj = sum_{i >= lo(j)} P2_i g_ii / ((1-p) n_i) + A(lo(j)),
//   V_jk = B(lo(j), lo(k)) + sum_{i >= lo(max(j, k))} g_ii (1 - P2_i)/(n_i (n_i - 1)),
// A(a) = sum_{i != i' >= a} e_ii' g_ii' / (n_i n_i') and B(a, b) the suffix sum over
// i >= a, i' >= b, i != i' of g_ii' (1 - e_ii'/m)/(n_i n_i' - min): exactly the pooled
// V-path brackets for an equicorrelated gradient without the mask. The Q and K paths see
// the keys and values only through their spread about the row's mean (the softmax
// gradient's rows sum to 0), so they take the row's own key covariance (key_prefixes: c,
// its means m_j(n) over a prefix and M(n, n'), corr_n, spread_n, spread2_n; Pg_i the
// softmax gradient's row statistic; k = p/(1-p)):
//   Q_ii = [Pg_i (spread2_n + k spread_n) + (1 - corr_n)^2 (1 - 1/n)/d] g_ii,  n = n_i,
//   Q_ii' = (1-r)^2 g_ii' (1/L + (1 - 1/L)/d) bidirectional; causal_query_pair for causal rows,
//   K_jj = sum_{i >= lo(j)} Pg_i g_ii / n_i [(c_jj - 2 m_j(n_i) + M(n_i, n_i)) n_i/(n_i - 1) + k c_jj]
//        + sum_{i != i' >= lo(j)} e_ii' g_ii' c_ii' kf_j(i, i') / (n_i n_i') + (1-r) tilt A0(lo(j)),
//   kf_j(i, i') = c_jj - m_j(n_i) - m_j(n_i') + M(n_i, n_i')   (value j about both rows' means),
//   K_jk = -(r (1-r) + (1-r) tilt) A0(lo(max(j, k))) / (c - 1),  c the number of rows covering both,
// A0 as A with e_ii' = 1; times S-type scales as in predict (self_attention_gradients).
// For an equicorrelated c these are the pooled brackets (Q exactly, its causal pairs up to
// terms in 1/n_i such as a one-key prefix's zero spread; K up to kf's
// (1 - 1/min(n_i, n_i')), the key's own share of the row means). r, s2 and the score
// statistics are the block's pooled ones (as the resolved forward).
template <class T>
struct resolved_qkv {
    resolved_state<T> q, k, v;  ///< per unit of dQ, dK, dV
    resolved_state<T> qk;       ///< the query/key weight norms' shared sum: qkv_gradients::qk of predict.hpp
};

template <class T>
resolved_qkv<T> resolved_attention_gradients(const multi_head_attention<T>& m, const resolved_block<T>& b,
                                             const resolved_state<T>& g) {
    const int L = g.L;
    const std::size_t Ls = std::size_t(L);
    const T d = T(m.d_model);
    const signal<T> pu = pooled(b.u);
    const T r = pu.corr, inv = T(1) / (T(1) - m.p);
    auto n_of = [&](int i) { return m.causal ? i + 1 : L; };
    auto lo = [&](int j) { return m.causal ? j : 0; };
    auto p2 = [&](int i) { return b.p2[std::size_t(n_of(i) - 1)]; };
    auto pg = [&](int i) { return b.pg[std::size_t(n_of(i) - 1)]; };
    // 1-D suffix sums over rows i >= a.
    std::vector<T> d1(Ls + 1, T(0)), d2(Ls + 1, T(0));
    for (int i = L - 1; i >= 0; --i) {
        const T n = T(n_of(i)), gi = g.at(i, i);
        d1[std::size_t(i)] = d1[std::size_t(i) + 1] + mul0(p2(i) / n, gi);
        d2[std::size_t(i)] = d2[std::size_t(i) + 1] + (n > T(1) ? mul0((T(1) - p2(i)) / (n * (n - T(1))), gi) : T(0));
    }
    // A(a), A0(a): sums over the square i, i' >= a without its diagonal; B: 2-D suffix sums.
    std::vector<T> A(Ls + 1, T(0)), A0(Ls + 1, T(0));
    const std::size_t W = Ls + 1;
    std::vector<T> B(W * W, T(0));
    // The keys' norm spread (column_spread, attention_moments.hpp) with the block's pooled
    // statistics and h = 1/L (H_L/L causal): on every pair of rows sharing a key, and the K
    // path's tilt on the same pair sums as its shared-query term.
    T h = T(1) / T(L);
    if (m.causal) {
        T harmonic = T(0);
        for (int i = 1; i <= L; ++i) harmonic += T(1) / T(i);
        h = harmonic / T(L);
    }
    const key_spread<T> ks = column_spread(m.d_model, m.d_model / m.heads, h, r, r, b.sc.S, b.sc.e_sig);
    const T e_col = mul0(b.sc.e_rho, ks.col);
    const T tilt = (T(1) - r) * min_of(ks.tilt, (T(1) - r) * T(L));  // the cap of set_columns (attention.hpp)
    auto e_of = [&](int i, int k) {
        const T mx = T(n_of(i) > n_of(k) ? n_of(i) : n_of(k));
        return e_col < mx ? e_col : mx;
    };
    for (int a = L - 1; a >= 0; --a) {
        T row = 0, row0 = 0;
        for (int k = a + 1; k < L; ++k) {
            const T w0 = g.at(a, k) / (T(n_of(a)) * T(n_of(k)));
            row0 += w0;
            row += e_of(a, k) * w0;
        }
        A[std::size_t(a)] = A[std::size_t(a) + 1] + T(2) * row;
        A0[std::size_t(a)] = A0[std::size_t(a) + 1] + T(2) * row0;
    }
    for (int i = L - 1; i >= 0; --i)
        for (int k = L - 1; k >= 0; --k) {
            T term = 0;
            if (i != k) {
                const T ni = T(n_of(i)), nk = T(n_of(k));
                const T mx = ni > nk ? ni : nk, mn = ni < nk ? ni : nk;
                term = g.at(i, k) * (T(1) - e_of(i, k) / mx) / (ni * nk - mn);
            }
            const std::size_t ik = std::size_t(i) * W + std::size_t(k);
            B[ik] = term + B[ik + W] + B[ik + 1] - B[ik + W + 1];
        }
    // qk: the Q path with its unit coupling (the /d terms) times the stream's anisotropy,
    // for the query and key weight norms (predict.hpp's self_attention_gradients).
    const T aniso = b.aniso;
    // The K path's pair sum with w_ii' = e_ii' g_ii' c_ii' / (n_i n_i') (0 for i = i'):
    //   sum_{i,i' >= a} w kf_j = c_jj KW(a) - 2 sum_{i >= a} m_j(n_i) KT(i, a) + KM(a),
    // KT(i, a) = sum_{i' >= a} w_ii' (row suffix sums), KW and KM suffix sums over the square.
    const key_prefixes<T> kp = key_prefixes_of(b.u, pu);
    const T kdrop = m.p * inv;
    std::vector<T> KT(Ls * W, T(0)), KW(Ls + 1, T(0)), KM(Ls + 1, T(0));
    auto w_of = [&](int i, int k) {
        return i == k ? T(0) : mul0(e_of(i, k) * kp.entry(i, k) / (T(n_of(i)) * T(n_of(k))), g.at(i, k));
    };
    for (int i = 0; i < L; ++i)
        for (int k = L - 1; k >= 0; --k) KT[std::size_t(i) * W + std::size_t(k)] = KT[std::size_t(i) * W + std::size_t(k) + 1] + w_of(i, k);
    for (int i = L - 1; i >= 0; --i) {
        T row = 0;
        for (int k = i + 1; k < L; ++k) row += w_of(i, k) * kp.block_mean(n_of(i), n_of(k));
        KW[std::size_t(i)] = KW[std::size_t(i) + 1] + T(2) * KT[std::size_t(i) * W + std::size_t(i) + 1];
        KM[std::size_t(i)] = KM[std::size_t(i) + 1] + T(2) * row;
    }
    resolved_qkv<T> out;
    out.q = out.k = out.v = out.qk = resolved_state<T>{L, std::vector<T>(g.c.size(), T(0))};
    for (int j = 0; j < L; ++j) {
        const std::size_t a = std::size_t(lo(j));
        const std::size_t nj = std::size_t(n_of(j));
        out.v.at(j, j) = inv * d1[a] + A[a];
        const T rj = kp.corr[nj - 1];
        const T qdrop = pg(j) * (kp.spread2[nj - 1] + kdrop * kp.spread[nj - 1]);
        const T coupling = (T(1) - rj) * (T(1) - rj) * (T(1) - T(1) / T(nj)) / d;
        out.q.at(j, j) = mul0(qdrop + coupling, g.at(j, j));
        out.qk.at(j, j) = mul0(qdrop + aniso * coupling, g.at(j, j));
        const T cjj = kp.entry(j, j);
        T kjj = cjj * KW[a] + KM[a] + mul0(tilt, A0[a]);
        for (int i = int(a); i < L; ++i) {
            const int ni = n_of(i);
            const T mi = kp.row_mean(j, ni);
            kjj -= T(2) * mi * KT[std::size_t(i) * W + a];
            if (ni > 1) {
                const T centred = (cjj - T(2) * mi + kp.block_mean(ni, ni)) * T(ni) / T(ni - 1);
                kjj += mul0(pg(i) / T(ni), g.at(i, i)) * (centred + kdrop * cjj);
            }
        }
        out.k.at(j, j) = kjj > T(0) ? kjj : T(0);  // a variance: the bracket can dip below 0 only by rounding or r_g r < 0
        for (int k = j + 1; k < L; ++k) {
            const std::size_t c = std::size_t(lo(k));  // lo(max(j, k)) = lo(k)
            out.v.at(j, k) = out.v.at(k, j) = B[a * W + c] + d2[c];
            if (m.causal) {
                // Rows j < k see the prefixes n <= n' of their keys, the first n shared:
                // each prefix's own spread instead of the block's pooled 1 - r.
                const query_pair<T> qp = causal_query_pair(kp, n_of(j), n_of(k));
                out.q.at(j, k) = out.q.at(k, j) = mul0(qp.bracket(T(1) / d), g.at(j, k));
                out.qk.at(j, k) = out.qk.at(k, j) = mul0(qp.bracket(aniso / d), g.at(j, k));
            } else {
                const T cjk = (T(1) - T(1) / T(L)) / d;
                const T r2 = (T(1) - r) * (T(1) - r) * g.at(j, k);
                out.q.at(j, k) = out.q.at(k, j) = r2 * (T(1) / T(L) + cjk);
                out.qk.at(j, k) = out.qk.at(k, j) = r2 * (T(1) / T(L) + aniso * cjk);
            }
            const T rows = T(L) - T(c);
            out.k.at(j, k) = out.k.at(k, j) = rows > T(1) ? -(r * (T(1) - r) + tilt) * A0[c] / (rows - T(1)) : T(0);
        }
    }
    // The scales of self_attention_gradients: dQ carries sigma_v^2 (d s2 sigma_k)^2 per
    // unit of the bracket, dK sigma_v^2 (d s2 sigma_q)^2.
    const T ds2 = mul0(d, pu.var), sq = mul0(ds2, m.sigma_k), sk = mul0(ds2, m.sigma_q);
    out.q = scaled(mul0(m.sigma_v * m.sigma_v, sq * sq), out.q);
    out.qk = scaled(mul0(m.sigma_v * m.sigma_v, ds2 * ds2), out.qk);
    out.k = scaled(mul0(m.sigma_v * m.sigma_v, sk * sk), out.k);
    return out;
}

/// x with every position's variance multiplied by f_i and every covariance by
/// sqrt(f_i f_j): a per-position factor on the gradient variance that keeps the pairs'
/// correlations, as predict's scaling of a pooled variance does.
template <class T>
resolved_state<T> rescaled(resolved_state<T> x, const std::vector<T>& f) noexcept {
    for (int i = 0; i < x.L; ++i)
        for (int j = 0; j < x.L; ++j) {
            T& v = x.at(i, j);
            v = mul0(v, i == j ? f[std::size_t(i)] : std::sqrt(f[std::size_t(i)] * f[std::size_t(j)]));
        }
    return x;
}

/// The Post-LN LayerNorm factors of predict (post_ln.hpp) per position: for each position
/// the ratio of post_ln_backward to the component's diagonal factor (d-2)/((d-3) var_z),
/// var_z recovered from that factor, and the skip path's factor 1 - 2 kappa perp_i/(d-2).
template <class T>
void resolved_post_ln_factors(const transformer_spec<T>& s, const resolved_state<T>& ln, const T& skip, bool ffn,
                              const post_ln_state<T>& pl, std::vector<T>& ln_ratio, std::vector<T>& z_var) {
    const int d = s.d_model;
    const T gain = T(d - 2) / T(d - 3);
    const T phi = post_ln_branch_phi(d, s.d_ff, ffn, s.p_hidden);
    ln_ratio.assign(std::size_t(ln.L), T(1));
    z_var.assign(std::size_t(ln.L), T(0));
    for (int i = 0; i < ln.L; ++i) {
        const T f = ln.at(i, i);
        if (!(f > T(0)) || !(f < std::numeric_limits<T>::infinity())) continue;  // the component's rules
        const T z = gain / f;
        z_var[std::size_t(i)] = z;
        ln_ratio[std::size_t(i)] =
            post_ln_backward(d, signal<T>{T(0), z, T(0)}, skip, phi, pl.ln_input, pl.in, T(1), gradient<T>{T(1), T(0)}).var / f;
    }
}

/// One block's backward: from the gradient covariance G at the block's output to that at
/// its input, filling the block's weight-gradient norms. Post-LN blocks carry predict's
/// post_ln_state down the stack (`skip`: lambda^2 times the block input's variance).
template <class T>
resolved_state<T> resolved_block_backward(const transformer_spec<T>& s, const layer_sigmas<T>& w,
                                          const resolved_block<T>& b, bool attention, const resolved_state<T>& G,
                                          weight_grad_norms<T>& wg, post_ln_state<T>& pl, const T& skip) {
    const int d = s.d_model, f = s.d_ff;
    const T dd = T(d);
    // Post-LN: the block's LayerNorm sits on the sum z; then beta and hidden dropout
    // (independent per token: the variances grow by 1/(1-p)).
    const bool post = s.norm == norm_placement::post;
    std::vector<T> ln_ratio, z_var;
    if (post) resolved_post_ln_factors(s, b.ln, skip, !attention, pl, ln_ratio, z_var);
    const resolved_state<T> gz = post ? rescaled(times(G, b.ln), ln_ratio) : G;
    resolved_state<T> go = scaled(s.beta * s.beta, gz);
    const T drop = T(1) / (T(1) - s.p_hidden);
    for (int i = 0; i < go.L; ++i) go.at(i, i) *= drop;
    resolved_state<T> gu;
    if (attention) {
        const multi_head_attention<T> m{d, s.heads, s.seq_len, w.q, w.k, w.v, w.o,
                                        s.p_attention, s.arch == architecture::decoder, form::best};
        wg.o = resolved_weight_norm(d, d, b.mid, go);
        const resolved_state<T> gh = scaled(dd * w.o * w.o, go);
        const resolved_qkv<T> at = resolved_attention_gradients(m, b, gh);
        const T qk = resolved_weight_norm(d, d, b.u, at.qk);
        wg.q = mul0(qk, w.k * w.k);
        wg.k = mul0(qk, w.q * w.q);
        wg.v = resolved_weight_norm(d, d, b.u, at.v);
        gu = scaled(dd * w.v * w.v, at.v);
        add_scaled(dd * w.q * w.q, at.q, gu);
        add_scaled(dd * w.k * w.k, at.k, gu);
    } else {
        wg.ffn2 = resolved_weight_norm(f, d, b.ffn.act, go);
        const resolved_state<T> g1 = times(scaled(dd * w.ffn2 * w.ffn2, go), b.ffn.slope);
        wg.ffn1 = resolved_weight_norm(d, f, b.u, g1);
        gu = scaled(T(f) * w.ffn1 * w.ffn1, g1);
    }
    resolved_state<T> gin = scaled(s.lambda * s.lambda, gz);
    if (post) {
        const T kappa = attention ? attention_kappa(pooled_gradient(gz)) : T(1);
        std::vector<T> sf(std::size_t(gz.L), T(1));
        for (std::size_t i = 0; i < sf.size(); ++i) {
            const T z = z_var[i];
            sf[i] = post_ln_skip_factor(d, z > skip ? (z - skip) / z : T(0), kappa);
        }
        gin = rescaled(gin, sf);
        pl.in = post_ln_below(pooled(gin).var, pooled(gu).var);
        pl.ln_input = true;
    }
    if (s.norm == norm_placement::pre)
        add_scaled(T(1), times(gu, b.ln), gin);
    else
        add_scaled(T(1), gu, gin);
    return gin;
}

/// Pooled like the estimator (pooled(): +infinity for an overflowed state, never NaN).
template <class T>
gradient<T> pooled_gradient(const resolved_state<T>& g) noexcept {
    const signal<T> p = pooled(g);
    return {p.var, p.corr};
}

}  // namespace detail

/// The trajectory of predict(spec) (same points, same order) for an encoder or decoder
/// stack, with the forward of predict_forward_resolved and the position-resolved backward
/// and weight-gradient norms above. Throws sigprop::invalid_argument for an invalid spec
/// (validate), an encoder-decoder and a nonzero input mean.
template <class T>
trajectory<T> predict_resolved(const transformer_spec<T>& s) {
    using namespace detail;
    validate(s);
    std::vector<resolved_block<T>> blocks;
    resolved_state<T> final_ln;
    const std::vector<signal<T>> xs = resolved_forward(s, &blocks, &final_ln);
    const int N = s.layers, L = s.seq_len;
    const stack_kind stack = s.arch == architecture::decoder ? stack_kind::decoder : stack_kind::encoder;
    trajectory<T> tr;
    tr.weight_grads.assign(std::size_t(N), weight_grad_norms<T>{});
    tr.points.push_back({boundary_kind::input, stack, -1, xs[0], {}});
    for (int l = 0; l < N; ++l) {
        tr.points.push_back({boundary_kind::attention, stack, l, xs[std::size_t(2 * l + 1)], {}});
        tr.points.push_back({boundary_kind::ffn, stack, l, xs[std::size_t(2 * l + 2)], {}});
    }
    if (s.final_norm) tr.points.push_back({boundary_kind::final_norm, stack, N, xs.back(), {}});
    const gradient<T> gt = s.output_gradient;
    resolved_state<T> G{L, std::vector<T>(std::size_t(L) * std::size_t(L), gt.corr * gt.var)};
    for (int i = 0; i < L; ++i) G.at(i, i) = gt.var;
    std::size_t p = tr.points.size() - 1;
    tr.points[p].g = pooled_gradient(G);
    post_ln_state<T> pl;  // as predict's stack_backward
    if (s.final_norm) {
        G = times(G, final_ln);
        if (s.norm == norm_placement::post) {  // final_norm_backward: (d-2)/d on a LayerNorm output
            G = scaled(T(s.d_model - 3) / T(s.d_model), G);
            pl.in = final_norm_incoming<T>();
        }
        tr.points[--p].g = pooled_gradient(G);
    }
    const T l2 = s.lambda * s.lambda;
    for (int l = N - 1; l >= 0; --l) {
        const layer_sigmas<T>& w = s.sigmas[std::size_t(l)];
        weight_grad_norms<T>& wg = tr.weight_grads[std::size_t(l)];
        G = resolved_block_backward(s, w, blocks[std::size_t(2 * l + 1)], false, G, wg, pl, l2);
        tr.points[--p].g = pooled_gradient(G);
        pl.ln_input = l > 0;
        G = resolved_block_backward(s, w, blocks[std::size_t(2 * l)], true, G, wg, pl, mul0(l2, l > 0 ? T(1) : xs[0].var));
        tr.points[--p].g = pooled_gradient(G);
    }
    tr.overflow_layer = first_overflow_layer(tr, N, false);
    return tr;
}

}  // namespace sigprop
