#pragma once
// Runs a sweep on the GPU backend: one experiment at a time, each experiment's sequences
// as one batch, drawing the streams the CPU sweep draws (the same keys, the same order),
// so the two backends measure the same random draws and differ only by rounding.
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sigprop/validation/batched/fold.hpp"
#include "sigprop/validation/gpu/device.hpp"
#include "sigprop/validation/sweep/drivers.hpp"
#include "sigprop/validation/sweep/run.hpp"

namespace sigprop::validation {

namespace detail {

inline batched::moment_request moments_of(const experiment_input& in) {
    return {in.x.mean, in.x.var, in.x.corr, in.g.var, in.g.corr};
}

/// The attention experiment of a point, as the attention driver builds it.
inline batched::attention_job attention_job_of(const params& p, const run_options& ro) {
    const experiment_input in = input_of(p, int_param(p, "d_in"));
    batched::attention_job j;
    j.L = in.tokens;
    j.d_in = in.width;
    j.d_head = int_param(p, "d_head");
    j.sigma_q = j.sigma_k = param(p, "sigma_qk");
    j.sigma_v = param(p, "sigma_v");
    j.p = param(p, "p");
    j.m = moments_of(in);
    j.seed = ro.seed;
    j.experiment = ro.experiment;
    j.sequences = ro.sequences;
    return j;
}

inline batched::pointwise_job pointwise_job_of(batched::pointwise_kind kind, const params& p, const run_options& ro) {
    const experiment_input in = input_of(p, int_param(p, "d"));
    batched::pointwise_job j;
    j.kind = kind;
    j.L = in.tokens;
    j.width = in.width;
    j.p = kind == batched::pointwise_kind::dropout ? param(p, "p") : 0.0;
    j.m = moments_of(in);
    j.seed = ro.seed;
    j.experiment = ro.experiment;
    j.sequences = ro.sequences;
    return j;
}

inline batched::linear_job linear_job_of(const params& p, const run_options& ro) {
    const experiment_input in = input_of(p, int_param(p, "d_in"));
    batched::linear_job j;
    j.L = in.tokens;
    j.d_in = in.width;
    j.d_out = int_param(p, "d_out");
    j.sigma_w = param(p, "sigma_w");
    j.m = moments_of(in);
    j.seed = ro.seed;
    j.experiment = ro.experiment;
    j.sequences = ro.sequences;
    return j;
}

/// The softmax experiment of a point: L logits per column, `rows` columns per sequence.
inline batched::softmax_job softmax_job_of(const params& p, const run_options& ro) {
    const experiment_input in = input_of(p, int_param(p, "rows"));
    batched::softmax_job j;
    j.L = in.tokens;
    j.rows = in.width;
    j.m = moments_of(in);
    j.seed = ro.seed;
    j.experiment = ro.experiment;
    j.sequences = ro.sequences;
    return j;
}

inline batched::layer_norm_job layer_norm_job_of(const params& p, const run_options& ro) {
    const experiment_input in = input_of(p, int_param(p, "d"));
    batched::layer_norm_job j;
    j.L = in.tokens;
    j.d = in.width;
    j.m = moments_of(in);
    j.seed = ro.seed;
    j.experiment = ro.experiment;
    j.sequences = ro.sequences;
    return j;
}

using gpu_measure = batched::experiment_sums (*)(gpu::device&, const params&, const run_options&);

/// The components the GPU backend runs (every one the CPU sweep has, in the drivers'
/// order), and how: the drivers' parameters, the same streams.
inline const std::vector<std::pair<std::string, gpu_measure>>& gpu_drivers() {
    using batched::pointwise_kind;
    static const std::vector<std::pair<std::string, gpu_measure>> all{
        {"linear", [](gpu::device& d, const params& p, const run_options& o) { return d.run(linear_job_of(p, o)); }},
        {"relu", [](gpu::device& d, const params& p, const run_options& o) {
             return d.run(pointwise_job_of(pointwise_kind::relu, p, o));
         }},
        {"gelu", [](gpu::device& d, const params& p, const run_options& o) {
             return d.run(pointwise_job_of(pointwise_kind::gelu, p, o));
         }},
        {"layer_norm", [](gpu::device& d, const params& p, const run_options& o) {
             return d.run(layer_norm_job_of(p, o));
         }},
        {"dropout", [](gpu::device& d, const params& p, const run_options& o) {
             return d.run(pointwise_job_of(pointwise_kind::dropout, p, o));
         }},
        {"softmax", [](gpu::device& d, const params& p, const run_options& o) { return d.run(softmax_job_of(p, o)); }},
        {"attention", [](gpu::device& d, const params& p, const run_options& o) { return d.run(attention_job_of(p, o)); }},
    };
    return all;
}

inline gpu_measure find_gpu_driver(const std::string& component) {
    std::string known;
    for (const auto& [name, f] : gpu_drivers()) {
        if (name == component) return f;
        known += (known.empty() ? "" : ", ") + name;
    }
    throw sweep_error("component '" + component + "' has no GPU implementation (the cuda backend runs: " + known + ")");
}

}  // namespace detail

/// Like run_sweep, on the first GPU. Throws sweep_error for a component the GPU backend
/// lacks and gpu::error (a sweep_error) when there is no usable GPU. Reports the device
/// and its memory use in one line on stderr.
inline std::vector<point_record> run_sweep_gpu(const std::vector<planned_point>& pts, const sweep_options& o,
                                               gpu::options go,
                                               const std::function<void(std::size_t, std::size_t)>& progress = {},
                                               const point_callback& finished = {}) {
    std::vector<detail::gpu_measure> measure;
    for (const auto& pt : pts) measure.push_back(detail::find_gpu_driver(pt.grid->component));
    std::vector<point_record> records = predict_all(pts);
    gpu::device dev(go);
    for (std::size_t i = 0; i < pts.size(); ++i) {
        const run_options ro = run_options_for(pts[i], o);
        store(records[i], batched::fold(measure[i](dev, pts[i].p, ro), ro.blocks));
        if (finished) finished(records[i]);
        if (progress) progress(i + 1, pts.size());
    }
    std::fprintf(stderr, "gpu: %s, %s, batch buffers %.1f MiB, peak device memory in use %.1f MiB\n",
                 dev.name().c_str(), go.tf32 ? "TF32 GEMMs" : "FP32 GEMMs", double(dev.workspace_bytes()) / (1 << 20),
                 double(dev.peak_used_bytes()) / (1 << 20));
    return records;
}

}  // namespace sigprop::validation
