#pragma once
// Runs a sweep: every point of a grid set (or of one shard of it), in parallel over
// experiments with OpenMP. Each point draws its random numbers from streams keyed by
// (seed, point index), so the result does not depend on the number of threads, on the
// order in which points finish, or on how the sweep is sharded.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sigprop/core/errors.hpp"
#include "sigprop/validation/sweep/grid.hpp"
#include "sigprop/validation/sweep/record.hpp"

namespace sigprop::validation {

struct sweep_options {
    std::uint64_t seed{20240311};
    int shard_index{0};  ///< this shard, 0 <= shard_index < shard_count
    int shard_count{1};
    int max_blocks{16};  ///< jackknife blocks per point (fewer if there are fewer sequences)
    /// Keep only points whose parameter NAME takes one of the listed values (all filters
    /// must hold). Kept points keep their index, hence their random streams: a filtered
    /// sweep measures exactly what the whole sweep measures at those points.
    std::vector<std::pair<std::string, std::vector<double>>> where{};
};

/// Whether point p passes every filter of o (values match to 1e-9 relative).
inline bool selected(const params& p, const sweep_options& o) {
    for (const auto& [name, values] : o.where) {
        auto it = p.find(name);
        if (it == p.end()) return false;
        bool hit = false;
        for (double v : values) hit = hit || std::abs(it->second - v) <= 1e-9 * std::abs(v);
        if (!hit) return false;
    }
    return true;
}

/// A point to run: its global index and where it comes from.
struct planned_point {
    std::size_t index;
    const grid_spec* grid;
    params p;
};

/// The points of this shard: global index i belongs to shard i mod shard_count.
inline std::vector<planned_point> plan(const grid_set& set, const sweep_options& o) {
    if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
        throw sweep_error("shard must be i/n with 0 <= i < n");
    std::vector<planned_point> out;
    std::size_t index = 0;
    for (const auto& g : set.grids)
        for (std::size_t k = 0; k < g.size(); ++k, ++index)
            if (index % std::size_t(o.shard_count) == std::size_t(o.shard_index)) {
                params p = g.at(k);
                if (selected(p, o)) out.push_back({index, &g, std::move(p)});
            }
    return out;
}

inline std::string describe(const planned_point& pt) {
    std::string s = pt.grid->component + " point " + std::to_string(pt.index) + " {";
    bool first = true;
    for (const auto& [k, v] : pt.p) {
        s += (first ? "" : ", ") + k + "=" + sigprop::detail::format_value(v);
        first = false;
    }
    return s + "}";
}

/// Predictions of every planned point, before anything runs: an impossible parameter
/// stops the sweep here, so no partial output is ever written.
inline std::vector<point_record> predict_all(const std::vector<planned_point>& pts) {
    std::vector<point_record> out;
    out.reserve(pts.size());
    for (const auto& pt : pts) {
        const driver& d = find_driver(pt.grid->component);
        point_record r;
        r.index = pt.index;
        r.component = d.name;
        r.p = pt.p;
        r.sequences = pt.grid->sequences;
        try {
            r.paper = d.predict(pt.p, form::paper);
            r.best = d.predict(pt.p, form::best);
        } catch (const sigprop::invalid_argument& e) {
            throw sweep_error(describe(pt) + ": " + e.what());
        } catch (const sweep_error& e) {
            throw sweep_error(describe(pt) + ": " + e.what());
        }
        out.push_back(std::move(r));
    }
    return out;
}

/// The run options of a planned point: its streams are keyed by its global index.
inline run_options run_options_for(const planned_point& pt, const sweep_options& o) {
    run_options ro;
    ro.seed = o.seed;
    ro.experiment = static_cast<std::uint32_t>(pt.index);
    ro.sequences = pt.grid->sequences;
    ro.blocks = std::min(o.max_blocks, ro.sequences);
    return ro;
}

/// Writes a measurement into its record.
inline void store(point_record& r, const measurement& m) {
    const auto values = [](const measured_moments& y, const measured_moments& g) {
        return quantities{y.mean.value, y.var.value, g.var.value, y.cov.value, g.cov.value};
    };
    r.measured = values(m.y, m.g);
    r.se = {m.y.mean.se, m.y.var.se, m.g.var.se, m.y.cov.se, m.g.cov.se};
    r.half_a = values(m.y_halves[0], m.g_halves[0]);
    r.half_b = values(m.y_halves[1], m.g_halves[1]);
}

/// A finished point's record, handed over as soon as it is measured (the journal of
/// sweep/journal.hpp); called from any thread, so it must be thread-safe and not throw.
using point_callback = std::function<void(const point_record&)>;

/// Runs the planned points; `progress(done, total)` and `finished(record)` are called after
/// each point (from any thread, serialised by the caller's own lock if it needs one).
inline std::vector<point_record> run_sweep(const std::vector<planned_point>& pts,
                                           const sweep_options& o,
                                           const std::function<void(std::size_t, std::size_t)>& progress = {},
                                           const point_callback& finished = {}) {
    std::vector<point_record> records = predict_all(pts);
    std::atomic<std::size_t> done{0};
    const long long n = static_cast<long long>(pts.size());
#pragma omp parallel for schedule(dynamic, 1)
    for (long long i = 0; i < n; ++i) {
        const auto& pt = pts[std::size_t(i)];
        point_record& r = records[std::size_t(i)];
        const driver& d = find_driver(r.component);
        const run_options ro = run_options_for(pt, o);
        store(r, d.measure(pt.p, ro));
        if (finished) finished(r);
        const std::size_t k = ++done;
        if (progress) progress(k, pts.size());
    }
    return records;
}

}  // namespace sigprop::validation
