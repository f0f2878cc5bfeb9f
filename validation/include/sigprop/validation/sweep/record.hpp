#pragma once
// The result of one sweep point and its JSON form (what `sigprop-validate --json` writes
// and `sigprop-validate merge` reads back).
#include <cstddef>
#include <string>

#include <nlohmann/json.hpp>

#include "sigprop/validation/sweep/point.hpp"
#include "sigprop/validation/sweep/scoring.hpp"

namespace sigprop::validation {

struct point_record {
    std::size_t index{0};  ///< position in the whole (unsharded) sweep; also the experiment id
    std::string component;
    params p;
    int sequences{0};
    quantities paper{}, best{};    ///< predictions in the paper's form and in ours
    quantities measured{}, se{};   ///< measurement and its standard error
    quantities half_a{}, half_b{}; ///< the same from two independent halves of the samples

    quantities paper_errors() const { return errors(paper, measured); }
    quantities best_errors() const { return errors(best, measured); }
    quantities noise_errors() const { return noise_floor(half_a, half_b, best); }
};

namespace detail {
inline nlohmann::json to_json(const quantities& q) {
    nlohmann::json j = nlohmann::json::object();
    for (quantity k : all_quantities) j[key_of(k)] = q[int(k)];
    return j;
}
inline quantities quantities_from(const nlohmann::json& j) {
    quantities q{};
    for (quantity k : all_quantities) {
        const auto& v = j.at(key_of(k));
        // JSON has no infinity: an overflowing prediction is written as null.
        q[int(k)] = v.is_null() ? std::numeric_limits<double>::infinity() : v.get<double>();
    }
    return q;
}
}  // namespace detail

inline nlohmann::json to_json(const point_record& r) {
    using detail::to_json;
    nlohmann::json j;
    j["index"] = r.index;
    j["component"] = r.component;
    j["params"] = r.p;
    j["sequences"] = r.sequences;
    j["predicted"] = {{"paper", to_json(r.paper)}, {"best", to_json(r.best)}};
    j["measured"] = {{"value", to_json(r.measured)}, {"se", to_json(r.se)},
                     {"halves", {to_json(r.half_a), to_json(r.half_b)}}};
    j["errors"] = {{"paper", to_json(r.paper_errors())}, {"best", to_json(r.best_errors())},
                   {"noise", to_json(r.noise_errors())}};
    return j;
}

inline point_record record_from_json(const nlohmann::json& j) {
    using detail::quantities_from;
    point_record r;
    r.index = j.at("index").get<std::size_t>();
    r.component = j.at("component").get<std::string>();
    r.p = j.at("params").get<params>();
    r.sequences = j.at("sequences").get<int>();
    r.paper = quantities_from(j.at("predicted").at("paper"));
    r.best = quantities_from(j.at("predicted").at("best"));
    r.measured = quantities_from(j.at("measured").at("value"));
    r.se = quantities_from(j.at("measured").at("se"));
    r.half_a = quantities_from(j.at("measured").at("halves").at(0));
    r.half_b = quantities_from(j.at("measured").at("halves").at(1));
    return r;
}

}  // namespace sigprop::validation
