#pragma once
// The error table in the paper's layout: for every component, the 50th / 90th / 99th
// percentile of the relative error (in percent) of each quantity, for the paper's
// formulas, for ours, for the measurement's own noise floor, and the paper's published
// figures (REFERENCE.md section 5) for reference.
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "sigprop/validation/sweep/drivers.hpp"
#include "sigprop/validation/sweep/record.hpp"

namespace sigprop::validation {

/// One row of the table: per quantity the three percentiles (percent).
using percentile_row = std::array<std::array<double, 3>, 5>;

struct component_summary {
    std::string component;
    std::size_t points{0};
    percentile_row paper{}, best{}, noise{};
};

inline std::vector<component_summary> summarise(const std::vector<point_record>& records) {
    std::vector<component_summary> out;
    for (const auto& d : drivers()) {
        std::array<std::vector<double>, 5> ep, eb, en;
        std::size_t n = 0;
        for (const auto& r : records) {
            if (r.component != d.name) continue;
            ++n;
            const auto a = r.paper_errors(), b = r.best_errors(), c = r.noise_errors();
            for (int q = 0; q < 5; ++q) {
                ep[q].push_back(a[q]);
                eb[q].push_back(b[q]);
                en[q].push_back(c[q]);
            }
        }
        if (n == 0) continue;
        component_summary s{d.name, n, {}, {}, {}};
        const double pct[3] = {50, 90, 99};
        for (int q = 0; q < 5; ++q)
            for (int k = 0; k < 3; ++k) {
                s.paper[q][k] = 100 * percentile(ep[q], pct[k]);
                s.best[q][k] = 100 * percentile(eb[q], pct[k]);
                s.noise[q][k] = 100 * percentile(en[q], pct[k]);
            }
        out.push_back(s);
    }
    return out;
}

/// The paper's published percentiles (percent), where it gives them.
inline const std::map<std::string, std::array<std::string, 5>>& published() {
    static const std::map<std::string, std::array<std::string, 5>> t{
        {"linear", {"0.0/0.4/1.3", "0.4/1.4/2.8", "0.2/1.0/2.2", "0.4/1.4/2.8", "0.2/1.0/2.2"}},
        {"relu", {"0.3/1.3/2.3", "0.5/1.9/3.4", "0.6/1.5/2.6", "0.3/1.6/3.1", "0.2/1.1/2.3"}},
        {"gelu", {"0.1/1.0/2.4", "0.2/0.6/1.3", "0.2/0.6/1.1", "0.1/0.5/1.2", "0.1/0.4/0.9"}},
        {"layer_norm", {"~0", "0/0/0", "0.4/1.5/3.2", "0.1/0.5/1.0", "0.2/0.9/2.2"}},
        {"dropout", {"0.0/0.1/0.5", "0.1/0.5/1.5", "0.1/0.7/1.5", "0.0/0.4/1.3", "0.1/0.5/1.2"}},
        {"softmax", {"0/0/0", "0.2/0.9/4.0", "0.1/0.6/4.5", "-", "-"}},
        {"attention", {"0.2/1.0/2.5", "1.4/4.1/7.8", "2.2/13.3/44.5", "1.3/3.9/7.4", "1.6/4.5/8.2"}},
    };
    return t;
}

inline std::string format_row(const std::array<double, 3>& v) {
    std::string out;
    for (int k = 0; k < 3; ++k) {
        char buf[32];
        if (v[k] >= 1000) std::snprintf(buf, sizeof buf, ">999");
        else std::snprintf(buf, sizeof buf, "%.1f", v[k]);
        out += (k ? "/" : "") + std::string(buf);
    }
    return out;
}

/// Prints the table (percent; 50th/90th/99th percentile per cell).
inline void print_table(std::FILE* out, const std::vector<component_summary>& rows) {
    std::fprintf(out, "%-11s %-9s %7s", "component", "formulas", "points");
    for (quantity q : all_quantities) std::fprintf(out, " | %-17s", name_of(q));
    std::fprintf(out, "\n");
    for (const auto& s : rows) {
        const auto& d = find_driver(s.component);
        auto line = [&](const char* label, const percentile_row& v, bool count) {
            std::fprintf(out, "%-11s %-9s %7s", count ? s.component.c_str() : "", label,
                         count ? std::to_string(s.points).c_str() : "");
            for (int q = 0; q < 5; ++q)
                std::fprintf(out, " | %-17s", d.scored[q] ? format_row(v[q]).c_str() : "-");
            std::fprintf(out, "\n");
        };
        line("paper", s.paper, true);
        line("ours", s.best, false);
        line("noise", s.noise, false);
        auto it = published().find(s.component);
        if (it != published().end()) {
            std::fprintf(out, "%-11s %-9s %7s", "", "published", "");
            for (const auto& cell : it->second) std::fprintf(out, " | %-17s", cell.c_str());
            std::fprintf(out, "\n");
        }
    }
}

}  // namespace sigprop::validation
