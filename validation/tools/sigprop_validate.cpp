// sigprop-validate: sweeps grids of Monte-Carlo experiments and scores the library's
// formulas (the paper's and ours) against them, in the paper's error-table layout.
//
//   sigprop-validate [--grid quick|paper|FILE.json] [--component NAME|all] [--seed N]
//                    [--shard i/n] [--json OUT.json [--resume]] [--threads N] [--quiet]
//                    [--backend cpu|cuda [--tf32]]
//   sigprop-validate merge SHARD.json... [--json OUT.json]
//
// Bad input (unknown grid or component, malformed JSON, impossible parameters) exits with
// status 2 and one line on stderr; output files are written to a temporary name and
// renamed (validation/output_file.hpp), so a failed or interrupted run never leaves a
// partial file. With --json, every finished point also goes to the journal OUT.json.journal
// (sweep/journal.hpp), from which --resume continues an interrupted run.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "sigprop/core/config.hpp"
#include "sigprop/validation/output_file.hpp"
#include "sigprop/validation/sweep/grid.hpp"
#include "sigprop/validation/sweep/journal.hpp"
#include "sigprop/validation/sweep/report.hpp"
#include "sigprop/validation/sweep/run.hpp"
#include "sigprop/validation/sweep/run_gpu.hpp"
#include "validate_command.hpp"

namespace sv = sigprop::validation;
using nlohmann::json;

namespace {

constexpr const char* tool = "sigprop-validate";

json read_json_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw sv::sweep_error("cannot read '" + path + "'");
    try {
        return json::parse(in);
    } catch (const json::exception& e) {
        throw sv::sweep_error("'" + path + "' is not valid JSON: " + e.what());
    }
}

sv::grid_set load_grids(const std::string& grid) {
    const bool file = grid.size() > 5 && grid.substr(grid.size() - 5) == ".json";
    if (!file) return sv::named_grids(grid);
    return sv::grids_from_json(read_json_file(grid));
}

/// --where NAME=V1,V2,...
void parse_where(const std::string& s, sv::sweep_options& o) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == s.size())
        throw sv::sweep_error("--where must look like NAME=V1,V2,..., got '" + s + "'");
    std::vector<double> values;
    std::size_t pos = eq + 1;
    while (pos <= s.size()) {
        const auto comma = std::min(s.find(',', pos), s.size());
        const std::string item = s.substr(pos, comma - pos);
        std::size_t used = 0;
        double v = 0;
        try {
            v = std::stod(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (item.empty() || used != item.size())
            throw sv::sweep_error("--where " + s + ": '" + item + "' is not a number");
        values.push_back(v);
        pos = comma + 1;
    }
    o.where.emplace_back(s.substr(0, eq), values);
}

void parse_shard(const std::string& s, sv::sweep_options& o) {
    const auto slash = s.find('/');
    try {
        if (slash == std::string::npos) throw std::invalid_argument("no slash");
        std::size_t used = 0;
        o.shard_index = std::stoi(s.substr(0, slash), &used);
        if (used != slash) throw std::invalid_argument("trailing");
        const std::string n = s.substr(slash + 1);
        o.shard_count = std::stoi(n, &used);
        if (used != n.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
        throw sv::sweep_error("--shard must look like i/n, got '" + s + "'");
    }
    if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
        throw sv::sweep_error("--shard " + s + ": need 0 <= i < n");
}

/// A progress bar on stderr, only when stderr is a terminal.
class progress_bar {
public:
    explicit progress_bar(bool on) : on_(on && ::isatty(STDERR_FILENO)) {}
    void operator()(std::size_t done, std::size_t total) {
        if (!on_) return;
        std::lock_guard<std::mutex> lock(m_);
        const auto now = clock::now();
        if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        const int width = 40, filled = int(double(width) * double(done) / double(total));
        const double secs = std::chrono::duration<double>(now - start_).count();
        std::fprintf(stderr, "\r[%-*s] %zu/%zu points, %.1f s", width,
                     std::string(std::size_t(filled), '=').c_str(), done, total, secs);
        if (done == total) std::fprintf(stderr, "\n");
    }

private:
    using clock = std::chrono::steady_clock;
    bool on_;
    std::mutex m_;
    clock::time_point start_ = clock::now(), last_{};
};

// No wall-clock time in the document: the same command gives the same bytes, however it
// was run (threads, shards merged, interrupted and resumed). The time goes to stdout.
json document(const std::string& grid, const sv::sweep_options& o, std::size_t total,
              std::size_t selected, json points) {
    json j;
    j["tool"] = tool;
    j["version"] = std::to_string(SIGPROP_VERSION_MAJOR) + "." + std::to_string(SIGPROP_VERSION_MINOR) +
                   "." + std::to_string(SIGPROP_VERSION_PATCH);
    j["grid"] = grid;
    j["seed"] = o.seed;
    j["shard"] = {o.shard_index, o.shard_count};
    j["total_points"] = total;
    j["where"] = json::object();
    for (const auto& [name, values] : o.where) j["where"][name] = values;
    j["selected_points"] = selected;
    j["points"] = std::move(points);
    return j;
}

json points_of(const std::vector<sv::point_record>& records) {
    json points = json::array();
    for (const auto& r : records) points.push_back(sv::to_json(r));
    return points;
}

int run_main(const std::string& grid, const std::string& component, const sv::sweep_options& o,
             const std::string& json_out, bool resume, bool quiet, const std::string& backend, sv::gpu::options gpu) {
    const sv::grid_set set = sv::restrict_to(load_grids(grid), component);
    const auto pts = sv::plan(set, o);
    if (pts.empty()) throw sv::sweep_error("no point of grid '" + set.name + "' passes the filters");
    if (resume && json_out.empty()) throw sv::sweep_error("--resume needs --json (the journal is OUT.json.journal)");
    sv::predict_all(pts);  // an impossible point stops the run before any file is touched
    // The output is opened first, so an unwritable path fails now rather than after the sweep.
    std::optional<sv::output_file> out;
    std::optional<sv::journal_writer> journal;
    std::vector<json> resumed;
    if (!json_out.empty()) {
        out.emplace(json_out);
        const std::string journal_path = json_out + ".journal";
        const json identity = sv::journal_identity(set.name, component, pts, o,
                                                   backend == "cuda" ? (gpu.tf32 ? "cuda-tf32" : "cuda") : backend);
        std::optional<std::vector<json>> earlier;
        if (resume) earlier = sv::read_journal(journal_path, identity);
        if (earlier) resumed = std::move(*earlier);
        journal.emplace(journal_path, identity, earlier.has_value());
    }
    // The points still to measure; the journal's are taken as they are.
    std::map<std::size_t, json> done;
    for (auto& j : resumed) {
        const std::size_t index = j.at("index").get<std::size_t>();
        done.emplace(index, std::move(j));
    }
    std::vector<sv::planned_point> todo;
    for (const auto& pt : pts)
        if (!done.count(pt.index)) todo.push_back(pt);
    if (done.size() + todo.size() != pts.size())
        throw sv::sweep_error("journal '" + json_out + ".journal' holds points this run does not plan");
    progress_bar bar(!quiet);
    const auto progress = [&](std::size_t k, std::size_t) { bar(done.size() + k, pts.size()); };
    const auto finished = [&](const sv::point_record& r) {
        if (journal) journal->append(r);
    };
    const auto t0 = std::chrono::steady_clock::now();
    auto records = backend == "cuda" ? sv::run_sweep_gpu(todo, o, gpu, progress, finished)
                                     : sv::run_sweep(todo, o, progress, finished);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The table takes the resumed points as merge takes a shard's; the file, their JSON text.
    for (const auto& [index, j] : done) records.push_back(sv::record_from_json(j));
    for (const auto& r : records) done.emplace(r.index, sv::to_json(r));  // a resumed point keeps its text
    std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
    json points = json::array();
    for (auto& [index, j] : done) points.push_back(std::move(j));
    std::string filters;
    for (const auto& [name, values] : o.where) {
        filters += " where " + name + " in {";
        for (std::size_t i = 0; i < values.size(); ++i)
            filters += (i ? "," : "") + sigprop::detail::format_value(values[i]);
        filters += "}";
    }
    std::printf("grid %s, component %s, seed %llu, shard %d/%d%s: %zu of %zu points, %.1f s",
                set.name.c_str(), component.c_str(), static_cast<unsigned long long>(o.seed),
                o.shard_index, o.shard_count, filters.c_str(), records.size(), set.size(), secs);
    if (!resumed.empty()) std::printf(" (%zu points from the journal)", resumed.size());
    std::printf("\n");
    std::printf("relative error in percent, 50th/90th/99th percentile over the points\n");
    sv::print_table(stdout, sv::summarise(records));
    sv::sweep_options whole = o;
    whole.shard_index = 0;
    whole.shard_count = 1;
    const std::size_t selected = sv::plan(set, whole).size();
    if (out) {
        if (!journal->ok()) throw sv::sweep_error("cannot write the journal '" + json_out + ".journal'");
        out->stream() << document(set.name, o, set.size(), selected, std::move(points)).dump(1) << '\n';
        out->commit();
        journal->remove();
    }
    return 0;
}

int merge_main(const std::vector<std::string>& inputs, const std::string& json_out) {
    std::vector<sv::point_record> records;
    std::set<std::size_t> seen;
    json first;
    std::set<int> shards;
    for (const auto& path : inputs) {
        const json j = read_json_file(path);
        try {
            if (j.at("tool") != tool) throw sv::sweep_error("'" + path + "' was not written by " + tool);
            if (first.is_null()) first = j;
            for (const char* key : {"grid", "seed", "total_points", "where", "selected_points"})
                if (j.at(key) != first.at(key))
                    throw sv::sweep_error("'" + path + "' has a different " + key + " than '" + inputs[0] + "'");
            if (j.at("shard").at(1) != first.at("shard").at(1))
                throw sv::sweep_error("'" + path + "' has a different shard count than '" + inputs[0] + "'");
            if (!shards.insert(j.at("shard").at(0).get<int>()).second)
                throw sv::sweep_error("shard " + j.at("shard").at(0).dump() + " is given twice");
            for (const auto& pj : j.at("points")) {
                auto r = sv::record_from_json(pj);
                sv::find_driver(r.component);
                if (!seen.insert(r.index).second)
                    throw sv::sweep_error("point " + std::to_string(r.index) + " appears twice");
                records.push_back(std::move(r));
            }
        } catch (const json::exception& e) {
            throw sv::sweep_error("'" + path + "' is not a " + std::string(tool) + " result: " + e.what());
        }
    }
    const std::size_t total = first.at("total_points").get<std::size_t>();
    const std::size_t selected = first.at("selected_points").get<std::size_t>();
    const int count = first.at("shard").at(1).get<int>();
    if (int(shards.size()) != count)
        throw sv::sweep_error("got " + std::to_string(shards.size()) + " of " + std::to_string(count) + " shards");
    if (records.size() != selected)
        throw sv::sweep_error("the shards hold " + std::to_string(records.size()) + " of " +
                              std::to_string(selected) + " points");
    std::sort(records.begin(), records.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
    sv::sweep_options o;
    o.seed = first.at("seed").get<std::uint64_t>();
    for (const auto& [name, values] : first.at("where").items())
        o.where.emplace_back(name, values.get<std::vector<double>>());
    std::printf("merged %zu shards of grid %s, seed %llu: %zu points\n", shards.size(),
                first.at("grid").get<std::string>().c_str(), static_cast<unsigned long long>(o.seed),
                records.size());
    std::printf("relative error in percent, 50th/90th/99th percentile over the points\n");
    sv::print_table(stdout, sv::summarise(records));
    if (!json_out.empty())
        sv::write_file_atomically(
            json_out, document(first.at("grid").get<std::string>(), o, total, selected, points_of(records)).dump(1) + "\n");
    return 0;
}

}  // namespace

int sigprop::validation::validate_command(int argc, char** argv, const char* program) {
    CLI::App app{"Monte-Carlo validation of sigprop's formulas against real random components", program};
    std::string grid = "quick", component = "all", shard = "0/1", json_out;
    std::vector<std::string> where;
    sv::sweep_options o;
    int threads = 0;
    bool quiet = false, resume = false;
    std::string backend = "cpu";
    sv::gpu::options gpu;
    app.add_option("--grid", grid, "quick, paper, or a JSON grid file (*.json)");
    app.add_option("--component", component, "one component (linear, relu, ...) or all");
    app.add_option("--seed", o.seed, "seed of every random stream");
    app.add_option("--shard", shard, "run only shard i of n (0 <= i < n): points with index mod n == i");
    app.add_option("--where", where, "keep only points with NAME in a list of values: NAME=V1,V2 (repeatable)");
    app.add_option("--json", json_out, "write every point (parameters, predictions, measurement, errors) here");
    app.add_flag("--resume", resume,
                 "continue an interrupted run of this same command from OUT.json.journal (which every --json "
                 "run keeps until its output is written); no journal: start afresh");
    app.add_option("--threads", threads, "OpenMP threads (default: all cores)")->check(CLI::NonNegativeNumber);
    app.add_flag("--quiet", quiet, "no progress bar");
    app.add_option("--backend", backend, "cpu (Eigen, OpenMP) or cuda (cuBLAS, Thrust; every component)")
        ->check(CLI::IsMember({"cpu", "cuda"}));
    app.add_flag("--tf32", gpu.tf32, "cuda backend: TF32 tensor-core GEMMs (faster, less accurate; docs/GPU.md)");
    auto* merge = app.add_subcommand("merge", "join the JSON results of all shards into one report");
    std::vector<std::string> inputs;
    std::string merge_out;
    merge->add_option("shards", inputs, "the shards' JSON files")->required();
    merge->add_option("--json", merge_out, "write the merged JSON here");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::fprintf(stderr, "%s: error: %s\n", program, e.what());
        return 2;
    }
    try {
#ifdef _OPENMP
        if (threads > 0) omp_set_num_threads(threads);
#endif
        if (*merge) return merge_main(inputs, merge_out);
        parse_shard(shard, o);
        for (const auto& w : where) parse_where(w, o);
        return run_main(grid, component, o, json_out, resume, quiet, backend, gpu);
    } catch (const sv::sweep_error& e) {
        std::fprintf(stderr, "%s: error: %s\n", program, e.what());
        return 2;
    } catch (const sv::output_error& e) {
        std::fprintf(stderr, "%s: error: %s\n", program, e.what());
        return 2;
    } catch (const sigprop::invalid_argument& e) {
        std::fprintf(stderr, "%s: error: %s\n", program, e.what());
        return 2;
    }
}
