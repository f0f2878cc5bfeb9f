#pragma once
// Grids: the Cartesian product of parameter axes for one component, the paper's grids of
// REFERENCE.md section 5, a quick grid for tests, and user grids from JSON.
#include <cmath>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sigprop/validation/sweep/drivers.hpp"
#include "sigprop/validation/sweep/point.hpp"

namespace sigprop::validation {

struct grid_spec {
    std::string component;
    int sequences{64};
    std::vector<std::pair<std::string, std::vector<double>>> axes;

    std::size_t size() const {
        std::size_t n = 1;
        for (const auto& a : axes) n *= a.second.size();
        return n;
    }
    /// Point k of the product; the last axis varies fastest.
    params at(std::size_t k) const {
        params p;
        for (auto it = axes.rbegin(); it != axes.rend(); ++it) {
            const auto& vals = it->second;
            p[it->first] = vals[k % vals.size()];
            k /= vals.size();
        }
        return p;
    }
};

/// Checks a grid against its component: every field set exactly once, no unknown one,
/// no empty axis, finite values.
inline void check_grid(const grid_spec& g) {
    const driver& d = find_driver(g.component);
    if (g.sequences < 2) throw sweep_error(g.component + ": sequences must be >= 2");
    for (const auto& [name, vals] : g.axes) {
        bool known = false;
        for (const auto& f : d.fields) known = known || f == name;
        if (!known) throw sweep_error(g.component + ": unknown parameter '" + name + "'");
        if (vals.empty()) throw sweep_error(g.component + ": parameter '" + name + "' has no values");
        for (double v : vals)
            if (!std::isfinite(v))
                throw sweep_error(g.component + ": parameter '" + name + "' has a non-finite value");
    }
    for (const auto& f : d.fields) {
        int count = 0;
        for (const auto& a : g.axes) count += a.first == f;
        if (count != 1)
            throw sweep_error(g.component + ": parameter '" + f + "' must be given exactly once");
    }
}

namespace detail {
/// n values 10^a .. 10^b, evenly spaced in the exponent (the paper's "10^[a, b] (n)").
inline std::vector<double> logspace(double a, double b, int n) {
    std::vector<double> v;
    for (int i = 0; i < n; ++i) v.push_back(std::pow(10.0, n == 1 ? a : a + (b - a) * i / (n - 1)));
    return v;
}
inline std::vector<double> squares(std::vector<double> v) {
    for (double& x : v) x *= x;
    return v;
}
inline std::vector<double> scaled(std::vector<double> v, double by) {
    for (double& x : v) x *= by;
    return v;
}
}  // namespace detail

/// A named collection of grids.
struct grid_set {
    std::string name;
    std::vector<grid_spec> grids;
    std::size_t size() const {
        std::size_t n = 0;
        for (const auto& g : grids) n += g.size();
        return n;
    }
};

/// The paper's grids and sample counts (REFERENCE.md section 5). Where the paper gives a
/// standard deviation s, the axis holds the variance s^2.
inline grid_set paper_grids() {
    using detail::logspace;
    using detail::squares;
    grid_set set{"paper", {}};
    const std::vector<double> s3 = logspace(-0.5, 0.5, 3);
    const std::vector<double> thirds{0.0, 1.0 / 3, 2.0 / 3};
    const std::vector<double> widths{100, 316, 1000};
    {
        // Linear: sigma_w sqrt(d_in) in {0.1, 1, 10}, so sigma_w depends on d_in: the grid
        // holds d_in as the outer axis and sigma_w per d_in (3 x 3 values, 13122 points).
        for (double d_in : widths) {
            grid_spec g{"linear", 100, {}};
            g.axes = {{"d_in", {d_in}},
                      {"d_out", widths},
                      {"sigma_w", detail::scaled({0.1, 1, 10}, 1 / std::sqrt(d_in))},
                      {"x_mean", {0.1, 1, 10}},
                      {"x_var", squares(s3)},
                      {"x_corr", thirds},
                      {"g_var", squares(s3)},
                      {"g_corr", thirds},
                      {"L", {100, 1000}}};
            set.grids.push_back(g);
        }
    }
    const std::vector<double> fifths{0.0, 0.2, 0.4, 0.6, 0.8};
    // The elementwise activations act on one unit per token (width 1); the paper's
    // sample counts are sequences of L tokens.
    for (const char* act : {"relu", "gelu"}) {
        grid_spec g{act, std::string(act) == "relu" ? 10000 : 100000, {}};
        g.axes = {{"d", {1}},         {"x_mean", {0}},        {"x_var", squares(s3)},
                  {"x_corr", fifths}, {"g_var", squares(s3)}, {"g_corr", fifths},
                  {"L", {100, 1000}}};
        set.grids.push_back(g);
    }
    {
        grid_spec g{"layer_norm", 100, {}};
        g.axes = {{"d", widths},      {"x_mean", {-10, -3.3, 3.3}}, {"x_var", squares(s3)},
                  {"x_corr", fifths}, {"g_var", squares(s3)},       {"g_corr", fifths},
                  {"L", {100, 1000}}};
        set.grids.push_back(g);
    }
    {
        grid_spec g{"dropout", 100, {}};
        g.axes = {{"p", thirds},      {"d", widths},          {"x_mean", {-10, 0, 10}},
                  {"x_var", squares(s3)}, {"x_corr", thirds}, {"g_var", squares(s3)},
                  {"g_corr", thirds}, {"L", {100, 1000}}};
        set.grids.push_back(g);
    }
    {
        // Softmax: one row of L logits per sequence, 10^4 rows; L from 300 to 10^4 in five
        // steps evenly spaced in log L; the paper's softmax grid has no gradient correlation.
        grid_spec g{"softmax", 10000, {}};
        g.axes = {{"rows", {1}},
                  {"x_mean", {0}},
                  {"x_var", squares(logspace(-2, 0, 5))},
                  {"x_corr", fifths},
                  {"g_var", squares(logspace(-0.5, 0.5, 5))},
                  {"g_corr", {0}},
                  {"L", {300, 724, 1747, 4217, 10000}}};
        set.grids.push_back(g);
    }
    {
        // Attention: sigma_v sqrt(d_in) and sigma_q sqrt(d_in) = sigma_k sqrt(d_in) are the
        // paper's axes, so the grid holds one block per d_in (26244 points in all).
        for (double d_in : widths) {
            grid_spec g{"attention", 64, {}};
            const double u = 1 / std::sqrt(d_in);
            std::vector<double> sq = detail::scaled(logspace(-1, std::log10(0.6), 3), u);
            g.axes = {{"d_in", {d_in}},
                      {"d_head", {32, 64, 128, 256}},
                      {"sigma_qk", sq},
                      {"sigma_v", detail::scaled(s3, u)},
                      {"p", thirds},
                      {"x_mean", {0}},
                      {"x_var", {1}},
                      {"x_corr", thirds},
                      {"g_var", squares(s3)},
                      {"g_corr", thirds},
                      {"L", {300, 548, 1000}}};
            set.grids.push_back(g);
        }
    }
    return set;
}

/// A reduced grid for the default tests: small sizes, a few points per component.
inline grid_set quick_grids() {
    grid_set set{"quick", {}};
    set.grids.push_back({"linear", 64, {{"d_in", {32}}, {"d_out", {24}}, {"sigma_w", {0.05, 0.2}},
                                        {"x_mean", {0, 1}}, {"x_var", {0.5, 2}}, {"x_corr", {0, 0.6}},
                                        {"g_var", {1}}, {"g_corr", {0.3}}, {"L", {8}}}});
    for (const char* act : {"relu", "gelu"})
        set.grids.push_back({act, 64, {{"d", {16}}, {"x_mean", {0}}, {"x_var", {0.5, 3}},
                                       {"x_corr", {-0.1, 0.7}}, {"g_var", {1}}, {"g_corr", {0, 0.5}},
                                       {"L", {8}}}});
    set.grids.push_back({"layer_norm", 200, {{"d", {8, 24}}, {"x_mean", {-3, 1}}, {"x_var", {0.5, 2}},
                                             {"x_corr", {0.1, 0.9}}, {"g_var", {1}}, {"g_corr", {0.5}},
                                             {"L", {8}}}});
    set.grids.push_back({"dropout", 64, {{"p", {0, 0.5}}, {"d", {16}}, {"x_mean", {-3, 0}},
                                         {"x_var", {0.5, 2}}, {"x_corr", {0.3}}, {"g_var", {1}},
                                         {"g_corr", {0, 0.6}}, {"L", {8}}}});
    set.grids.push_back({"softmax", 400, {{"rows", {4}}, {"x_mean", {0}}, {"x_var", {0.25, 2}},
                                          {"x_corr", {0, 0.5}}, {"g_var", {1}}, {"g_corr", {0, 0.4}},
                                          {"L", {3, 40}}}});
    set.grids.push_back({"attention", 400, {{"d_in", {24}}, {"d_head", {8}}, {"sigma_qk", {0.02, 0.1}},
                                           {"sigma_v", {0.2}}, {"p", {0, 0.3}}, {"x_mean", {0}},
                                           {"x_var", {1}}, {"x_corr", {0, 0.5}}, {"g_var", {1}},
                                           {"g_corr", {0, 0.5}}, {"L", {12}}}});
    return set;
}

/// A named grid set: "paper" or "quick".
inline grid_set named_grids(const std::string& name) {
    if (name == "paper") return paper_grids();
    if (name == "quick") return quick_grids();
    throw sweep_error("unknown grid '" + name + "' (known: paper, quick, or a JSON file)");
}

/// Only the grids of one component (or all when component is "all").
inline grid_set restrict_to(grid_set set, const std::string& component) {
    if (component == "all") return set;
    find_driver(component);  // unknown names are an error even if no grid uses them
    std::vector<grid_spec> keep;
    for (auto& g : set.grids)
        if (g.component == component) keep.push_back(std::move(g));
    if (keep.empty()) throw sweep_error("grid '" + set.name + "' has no points for component '" + component + "'");
    set.grids = std::move(keep);
    return set;
}

/// A user grid from JSON: {"name": ..., "grids": [{"component": "linear", "sequences": 100,
/// "axes": {"d_in": [100], "x_var": [1, 2], ...}}, ...]}; a scalar stands for one value.
inline grid_set grids_from_json(const nlohmann::json& j) {
    if (!j.is_object() || !j.contains("grids") || !j["grids"].is_array() || j["grids"].empty())
        throw sweep_error("grid file: expected an object with a non-empty array \"grids\"");
    grid_set set{j.value("name", std::string("custom")), {}};
    for (const auto& gj : j["grids"]) {
        if (!gj.is_object() || !gj.contains("component") || !gj["component"].is_string())
            throw sweep_error("grid file: every grid needs a string \"component\"");
        grid_spec g;
        g.component = gj["component"].get<std::string>();
        if (gj.contains("sequences")) {
            if (!gj["sequences"].is_number_integer())
                throw sweep_error("grid file: \"sequences\" must be an integer");
            g.sequences = gj["sequences"].get<int>();
        }
        if (!gj.contains("axes") || !gj["axes"].is_object())
            throw sweep_error("grid file: grid of '" + g.component + "' needs an object \"axes\"");
        for (const auto& [key, val] : gj["axes"].items()) {
            std::vector<double> vals;
            if (val.is_number()) vals.push_back(val.get<double>());
            else if (val.is_array()) {
                for (const auto& x : val) {
                    if (!x.is_number()) throw sweep_error("grid file: axis '" + key + "' holds a non-number");
                    vals.push_back(x.get<double>());
                }
            } else throw sweep_error("grid file: axis '" + key + "' must be a number or an array of numbers");
            g.axes.emplace_back(key, vals);
        }
        for (const auto& k : gj.items())
            if (k.key() != "component" && k.key() != "sequences" && k.key() != "axes")
                throw sweep_error("grid file: unknown key '" + k.key() + "'");
        check_grid(g);
        set.grids.push_back(std::move(g));
    }
    return set;
}

}  // namespace sigprop::validation
