#pragma once
// The one exception type of the library and the checks every public entry point runs
// before it calls a (noexcept, host/device) formula.
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

#include "sigprop/core/form.hpp"
#include "sigprop/core/moments.hpp"

namespace sigprop {

/// Thrown for every bad input. The message names the component, the parameter, the
/// offending value and the valid range, e.g.
/// "sigprop::relu: x.corr = 1.5 is outside the valid range [-1, 1]".
class invalid_argument : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

namespace detail {

template <class V>
std::string format_value(const V& v) {
    std::ostringstream os;
    if constexpr (std::is_floating_point_v<V>) {
        if (std::isnan(v)) return "nan";
        if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
        os.precision(17);
        os << static_cast<long double>(v);
    } else if constexpr (std::is_arithmetic_v<V>) {
        os << v;
    } else {
        // Extended-precision scalars (e.g. Boost.Multiprecision) convert explicitly.
        os.precision(17);
        os << static_cast<long double>(v);
    }
    return os.str();
}

template <class V>
[[noreturn]] void fail(std::string_view component, std::string_view param, const V& value,
                       std::string_view range) {
    std::string msg = "sigprop::";
    msg += component;
    msg += ": ";
    msg += param;
    msg += " = ";
    msg += format_value(value);
    msg += " is outside the valid range ";
    msg += range;
    throw invalid_argument(msg);
}

template <class V>
bool is_finite(const V& v) {
    using std::isfinite;
    return isfinite(v);
}

/// A finite real number.
template <class V>
void require_finite(std::string_view component, std::string_view param, const V& v) {
    if (!is_finite(v)) fail(component, param, v, "(-inf, inf) (finite)");
}

/// A finite number >= 0 (variances, standard deviations).
template <class V>
void require_nonnegative(std::string_view component, std::string_view param, const V& v) {
    if (!is_finite(v) || !(v >= V(0))) fail(component, param, v, "[0, inf) (finite)");
}

/// A finite number > 0.
template <class V>
void require_positive(std::string_view component, std::string_view param, const V& v) {
    if (!is_finite(v) || !(v > V(0))) fail(component, param, v, "(0, inf) (finite)");
}

/// A correlation coefficient.
template <class V>
void require_corr(std::string_view component, std::string_view param, const V& v) {
    if (!(v >= V(-1) && v <= V(1))) fail(component, param, v, "[-1, 1]");
}

/// A drop probability: p = 1 would drop everything and divide by zero.
template <class V>
void require_drop_probability(std::string_view component, std::string_view param, const V& v) {
    if (!(v >= V(0) && v < V(1))) fail(component, param, v, "[0, 1)");
}

/// A probability, both ends included.
template <class V>
void require_probability(std::string_view component, std::string_view param, const V& v) {
    if (!(v >= V(0) && v <= V(1))) fail(component, param, v, "[0, 1]");
}

/// An integer size >= lo.
inline void require_size(std::string_view component, std::string_view param, long long v,
                         long long lo = 1) {
    if (v < lo) fail(component, param, v, "[" + std::to_string(lo) + ", inf)");
}

/// A form the component implements.
inline void require_form(std::string_view component, form f, bool supported,
                         std::string_view valid) {
    if (!supported) {
        std::string msg = "sigprop::";
        msg += component;
        msg += ": form = ";
        msg += to_string(f);
        msg += " is outside the valid range ";
        msg += valid;
        throw invalid_argument(msg);
    }
}

/// The forward moments of a component's input: finite mean, finite var >= 0, corr in [-1, 1].
/// The parameter names ("x.mean", ...) are only built when a check fails, so a valid call
/// costs a few comparisons.
template <class T>
void check_signal(std::string_view component, const signal<T>& x, std::string_view name = "x") {
    const auto field = [&](const char* f) { return std::string(name) + f; };
    if (!is_finite(x.mean)) require_finite(component, field(".mean"), x.mean);
    if (!(is_finite(x.var) && x.var >= T(0))) require_nonnegative(component, field(".var"), x.var);
    if (!(x.corr >= T(-1) && x.corr <= T(1))) require_corr(component, field(".corr"), x.corr);
}

/// The moments of the gradient arriving at a component's output.
template <class T>
void check_gradient(std::string_view component, const gradient<T>& g,
                    std::string_view name = "g") {
    const auto field = [&](const char* f) { return std::string(name) + f; };
    if (!(is_finite(g.var) && g.var >= T(0))) require_nonnegative(component, field(".var"), g.var);
    if (!(g.corr >= T(-1) && g.corr <= T(1))) require_corr(component, field(".corr"), g.corr);
}

}  // namespace detail
}  // namespace sigprop
