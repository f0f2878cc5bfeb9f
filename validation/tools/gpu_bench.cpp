// sigprop-gpu-bench: speed of the GPU backend's attention experiment next to the bare
// cuBLAS GEMMs it contains, timed with CUDA events, written as JSON.
//
//   sigprop-gpu-bench [--shape L,D_IN,D_HEAD]... [--sequences 64] [--p 0.3333]
//                     [--repeats 5] [--tf32] [--json OUT.json]
//
// Default shapes: the smallest, a middle and the largest point of the paper's attention
// grid. Exit status 2 with one line on stderr when there is no usable GPU.
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "sigprop/validation/gpu/device.hpp"
#include "sigprop/validation/output_file.hpp"

namespace gpu = sigprop::validation::gpu;
namespace batched = sigprop::validation::batched;

namespace {

constexpr const char* tool = "sigprop-gpu-bench";

batched::attention_job parse_shape(const std::string& s) {
    std::istringstream in(s);
    batched::attention_job j;
    char c1 = 0, c2 = 0;
    if (!(in >> j.L >> c1 >> j.d_in >> c2 >> j.d_head) || c1 != ',' || c2 != ',' || !in.eof() || j.L < 2 ||
        j.d_in < 1 || j.d_head < 1)
        throw gpu::error("--shape must look like L,D_IN,D_HEAD with L >= 2 and widths >= 1, got '" + s + "'");
    return j;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"GPU attention experiment versus its bare cuBLAS GEMMs", tool};
    std::vector<std::string> shapes{"300,100,32", "548,316,128", "1000,1000,256"};
    int sequences = 64, repeats = 5;
    double p = 1.0 / 3;
    gpu::options go;
    std::string json_out;
    app.add_option("--shape", shapes, "L,D_IN,D_HEAD (repeatable)");
    app.add_option("--sequences", sequences, "sequences per experiment (one batch)")->check(CLI::Range(2, 1 << 20));
    app.add_option("--p", p, "attention dropout")->check(CLI::Range(0.0, 0.99));
    app.add_option("--repeats", repeats, "timed experiments per shape")->check(CLI::Range(1, 1000));
    app.add_flag("--tf32", go.tf32, "TF32 tensor-core GEMMs");
    app.add_option("--json", json_out, "write the timings here");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
        return 2;
    }
    try {
        std::vector<batched::attention_job> jobs;
        for (const auto& s : shapes) jobs.push_back(parse_shape(s));
        gpu::device dev(go);
        nlohmann::json out;
        out["tool"] = tool;
        out["device"] = dev.name();
        out["gemm_math"] = go.tf32 ? "tf32" : "fp32";
        out["sequences"] = sequences;
        out["repeats"] = repeats;
        out["shapes"] = nlohmann::json::array();
        for (auto j : jobs) {
            // The paper grid's scales: sigma_qk sqrt(d_in) = 0.6, sigma_v sqrt(d_in) = 1.
            const double u = 1 / std::sqrt(double(j.d_in));
            j.sigma_q = j.sigma_k = 0.6 * u;
            j.sigma_v = u;
            j.p = p;
            j.m = {0, 1, 1.0 / 3, 1, 1.0 / 3};
            j.seed = 20240311;
            j.sequences = sequences;
            const gpu::attention_timing t = dev.time_attention(j, repeats);
            const double overhead = t.experiment_ms / t.gemm_ms - 1;
            std::printf("L=%d d_in=%d d_head=%d: experiment %.3f ms, its %d GEMMs alone %.3f ms (%.1f TFLOP/s), "
                        "overhead %.0f%%\n",
                        j.L, j.d_in, j.d_head, t.experiment_ms, t.gemms, t.gemm_ms,
                        t.gemm_flops / t.gemm_ms * 1e-9, 100 * overhead);
            out["shapes"].push_back({{"L", j.L}, {"d_in", j.d_in}, {"d_head", j.d_head}, {"p", p},
                                     {"experiment_ms", t.experiment_ms}, {"gemm_ms", t.gemm_ms},
                                     {"gemms", t.gemms}, {"gemm_tflops", t.gemm_flops / t.gemm_ms * 1e-9},
                                     {"overhead", overhead}});
        }
        out["workspace_mib"] = double(dev.workspace_bytes()) / (1 << 20);
        out["peak_device_memory_mib"] = double(dev.peak_used_bytes()) / (1 << 20);
        std::printf("%s: batch buffers %.1f MiB, peak device memory in use %.1f MiB\n", dev.name().c_str(),
                    out["workspace_mib"].get<double>(), out["peak_device_memory_mib"].get<double>());
        if (!json_out.empty()) {
            try {
                sigprop::validation::write_file_atomically(json_out, out.dump(1) + "\n");
            } catch (const sigprop::validation::output_error& e) {
                throw gpu::error(e.what());
            }
        }
        return 0;
    } catch (const gpu::error& e) {
        std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
        return 2;
    }
}
