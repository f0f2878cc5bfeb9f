// Fuzz target (b): the validator's grid files. The bytes are a grid file's content; the
// tool parses them as JSON (a parse error is its own message), then grids_from_json may
// only throw sweep_error. Each accepted grid's first points are predicted by the drivers
// sigprop-validate uses, in both forms: those may throw sweep_error (a bad point) or
// sigprop::invalid_argument (a value outside a formula's range), and their results must
// hold no NaN and no negative variance.
#include <algorithm>
#include <cstdint>

#include "invariants.hpp"
#include "sigprop/validation/sweep/grid.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace sv = sigprop::validation;
    const auto j = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;
    sv::grid_set set;
    bool ok = false;
    sigprop::fuzz::only_throws<sv::sweep_error>([&] {
        set = sv::grids_from_json(j);
        ok = true;
    });
    if (!ok) return 0;
    for (const auto& g : set.grids) {
        const sv::driver& d = sv::find_driver(g.component);
        const std::size_t n = std::min<std::size_t>(g.size(), 16);  // a few points per grid
        for (std::size_t k = 0; k < n; ++k)
            for (const sigprop::form f : {sigprop::form::best, sigprop::form::paper}) {
                sigprop::fuzz::only_throws<sv::sweep_error, sigprop::invalid_argument>([&] {
                    const sv::quantities q = d.predict(g.at(k), f);
                    // {mean, var, gradient var, token covariance, gradient covariance}
                    sigprop::fuzz::check_mean("mean", q[0]);
                    sigprop::fuzz::check_var("var", q[1]);
                    sigprop::fuzz::check_var("grad_var", q[2]);
                    sigprop::fuzz::check_mean("cov", q[3]);
                    sigprop::fuzz::check_mean("grad_cov", q[4]);
                });
            }
    }
    return 0;
}
