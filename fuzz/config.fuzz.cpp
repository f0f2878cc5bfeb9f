// Fuzz target (a): the `sigprop` tool's JSON model reader. The bytes are a config file's
// content, read by the tool's own apply_config_file, then turned into a spec by build()
// and, when cheap enough, predicted. The tool reports usage_error and
// sigprop::invalid_argument as one-line errors; anything else (a JSON library exception,
// a crash, a sanitizer report) is a defect. The trajectory's invariants are the predict
// target's to check: this one exercises the reader, and the known predict defects
// (docs/RELIABILITY.md) would otherwise stop it on its first config.
#include <cstdint>
#include <cstdio>
#include <string>
#include <unistd.h>

#include "cli/config.hpp"
#include "invariants.hpp"
#include "predict_checks.hpp"

namespace {

/// One file per fuzzing process, rewritten by every execution.
const std::string& config_path() {
    static const std::string path = "/tmp/sigprop-fuzz-config-" + std::to_string(::getpid()) + ".json";
    return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::FILE* f = std::fopen(config_path().c_str(), "wb");
    if (!f) std::abort();
    if (size && std::fwrite(data, 1, size, f) != size) std::abort();
    std::fclose(f);
    using sigprop::cli::usage_error;
    sigprop::fuzz::only_throws<usage_error, sigprop::invalid_argument>([] {
        sigprop::cli::model_config c;
        sigprop::cli::apply_config_file(config_path(), c);
        // The position-resolved DSLM solve costs O(layers L^2) (seconds at the tool's own
        // limit): it is built only for small models, so that one execution stays fast.
        if (c.dslm_resolved) {
            sigprop::cli::model_config pooled = c;
            pooled.dslm_resolved = false;
            const sigprop::transformer_spec<double> p = sigprop::cli::build(pooled);
            if (double(p.layers) * double(p.seq_len) * double(p.seq_len) > 2e5) return;
        }
        const sigprop::transformer_spec<double> s = sigprop::cli::build(c);
        if (sigprop::fuzz::cheap_enough(s)) (void)sigprop::predict(s);
    });
    return 0;
}
