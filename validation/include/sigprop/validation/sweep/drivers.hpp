#pragma once
// The components the sweep knows: how to build each from a point's parameters, what the
// library predicts for it (in the paper's form and in ours) and how to measure it.
#include <functional>
#include <string>
#include <vector>

#include "sigprop/core/form.hpp"
#include "sigprop/detail/attention_moments.hpp"
#include "sigprop/validation/experiment.hpp"
#include "sigprop/validation/sweep/point.hpp"

#include "sigprop/validation/components/attention.hpp"
#include "sigprop/validation/components/dropout.hpp"
#include "sigprop/validation/components/gelu.hpp"
#include "sigprop/validation/components/layer_norm.hpp"
#include "sigprop/validation/components/linear.hpp"
#include "sigprop/validation/components/relu.hpp"
#include "sigprop/validation/components/softmax.hpp"

namespace sigprop::validation {

struct driver {
    std::string name;
    /// Every parameter a point of this component must set (and the only ones allowed).
    std::vector<std::string> fields;
    /// Which of the five quantities the paper scores for this component.
    std::array<bool, 5> scored{true, true, true, true, true};
    /// Predicted quantities in the given form; throws sigprop::invalid_argument.
    std::function<quantities(const params&, form)> predict;
    /// One Monte-Carlo experiment.
    std::function<measurement(const params&, const run_options&)> measure;
};

namespace detail {

/// The moment parameters every component takes.
inline const std::vector<std::string> moment_fields{"x_mean", "x_var", "x_corr", "g_var", "g_corr", "L"};

inline experiment_input input_of(const params& p, int width) {
    experiment_input in;
    in.x = {param(p, "x_mean"), param(p, "x_var"), param(p, "x_corr")};
    in.g = {param(p, "g_var"), param(p, "g_corr")};
    in.tokens = int_param(p, "L");
    in.width = width;
    return in;
}

inline quantities as_quantities(const signal<double>& y, const gradient<double>& g) {
    // mul0: an overflowed (+inf) variance with correlation 0 has covariance 0, not NaN.
    return {y.mean, y.var, g.var, sigprop::detail::mul0(y.corr, y.var), sigprop::detail::mul0(g.corr, g.var)};
}

inline quantities as_quantities(const measurement& m) {
    return {m.y.mean.value, m.y.var.value, m.g.var.value, m.y.cov.value, m.g.cov.value};
}

/// A driver from `build(params, form) -> component` and `width(params)`; the component's
/// own forward/backward give the predictions and validation::measure the measurement.
template <class Build, class Width>
driver make_driver(std::string name, std::vector<std::string> own_fields, Build build, Width width) {
    driver d;
    d.name = std::move(name);
    d.fields = own_fields;
    d.fields.insert(d.fields.end(), moment_fields.begin(), moment_fields.end());
    d.predict = [build, width](const params& p, form f) {
        const auto c = build(p, f);
        const experiment_input in = input_of(p, width(p));
        return as_quantities(forward(c, in.x), backward(c, in.x, in.g));
    };
    d.measure = [build, width](const params& p, const run_options& o) {
        const auto c = build(p, form::best);
        return validation::measure(c, input_of(p, width(p)), o);
    };
    return d;
}

}  // namespace detail

/// Every component the sweep can run, in the paper's table order.
inline const std::vector<driver>& drivers() {
    static const std::vector<driver> all = [] {
        std::vector<driver> v;
        v.push_back(detail::make_driver(
            "linear", {"d_in", "d_out", "sigma_w"},
            [](const params& p, form) {
                return linear<double>{int_param(p, "d_in"), int_param(p, "d_out"), param(p, "sigma_w")};
            },
            [](const params& p) { return int_param(p, "d_in"); }));
        const auto width = [](const params& p) { return int_param(p, "d"); };
        v.push_back(detail::make_driver(
            "relu", {"d"}, [](const params&, form f) { return relu<double>{f}; }, width));
        v.push_back(detail::make_driver(
            "gelu", {"d"}, [](const params&, form f) { return gelu<double>{f}; }, width));
        v.push_back(detail::make_driver(
            "layer_norm", {"d"}, [](const params& p, form f) { return layer_norm<double>{int_param(p, "d"), f}; },
            width));
        v.push_back(detail::make_driver(
            "dropout", {"p", "d"}, [](const params& p, form) { return dropout<double>{param(p, "p")}; },
            [](const params& p) { return int_param(p, "d"); }));
        {
            // The paper scores only the mean, the variance and the gradient variance of a
            // softmax (its token covariance is exactly -var / (L - 1)).
            driver d = detail::make_driver(
                "softmax", {"rows"},
                [](const params& p, form f) { return softmax<double>{int_param(p, "L"), f}; },
                [](const params& p) { return int_param(p, "rows"); });
            d.scored = {true, true, true, false, false};
            v.push_back(std::move(d));
        }
        v.push_back(detail::make_driver(
            "attention", {"d_in", "d_head", "sigma_qk", "sigma_v", "p"},
            [](const params& p, form f) {
                const double qk = param(p, "sigma_qk");
                return attention<double>{int_param(p, "d_in"), int_param(p, "d_head"), int_param(p, "L"),
                                         qk, qk, param(p, "sigma_v"), param(p, "p"), f};
            },
            [](const params& p) { return int_param(p, "d_in"); }));
        return v;
    }();
    return all;
}

inline const driver& find_driver(const std::string& name) {
    for (const auto& d : drivers())
        if (d.name == name) return d;
    std::string known;
    for (const auto& d : drivers()) known += (known.empty() ? "" : ", ") + d.name;
    throw sweep_error("unknown component '" + name + "' (known: " + known + ")");
}

}  // namespace sigprop::validation
