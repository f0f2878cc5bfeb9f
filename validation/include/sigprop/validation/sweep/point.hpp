#pragma once
// A sweep point: one component, one set of parameters, one Monte-Carlo experiment.
#include <array>
#include <cstddef>
#include <map>
#include <stdexcept>
#include <string>

namespace sigprop::validation {

/// Named parameters of a point (component fields, input and gradient moments, sizes).
using params = std::map<std::string, double>;

/// The five quantities of the paper's error table, in its column order.
enum class quantity : int { x_mean, x_var, g_var, x_cov, g_cov };
inline constexpr std::array<quantity, 5> all_quantities{quantity::x_mean, quantity::x_var,
                                                        quantity::g_var, quantity::x_cov,
                                                        quantity::g_cov};
inline constexpr const char* name_of(quantity q) {
    constexpr const char* names[] = {"x mean", "x var", "g var", "x cov", "g cov"};
    return names[int(q)];
}
inline constexpr const char* key_of(quantity q) {
    constexpr const char* keys[] = {"x_mean", "x_var", "g_var", "x_cov", "g_cov"};
    return keys[int(q)];
}

/// Values of the five quantities (predicted or measured).
using quantities = std::array<double, 5>;

/// Thrown for a bad grid or a bad parameter of a point; the tool exits with status 2.
class sweep_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The value of a required parameter.
inline double param(const params& p, const std::string& name) {
    auto it = p.find(name);
    if (it == p.end()) throw sweep_error("missing parameter '" + name + "'");
    return it->second;
}

/// A parameter that must be an integer (a size).
inline int int_param(const params& p, const std::string& name) {
    const double v = param(p, name);
    if (!(v >= 1 && v <= 1e9) || v != double(static_cast<long long>(v)))
        throw sweep_error("parameter '" + name + "' = " + std::to_string(v) +
                          " must be an integer in [1, 1e9]");
    return int(v);
}

}  // namespace sigprop::validation
