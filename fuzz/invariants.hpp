#pragma once
// What every fuzz target asserts about a result the library returned without throwing
// (DESIGN.md, "Errors"): no NaN anywhere, variances >= 0 or +infinity, |corr| <= 1.
// A violation prints the offending value and aborts, which libFuzzer records as a crash
// with the input that caused it.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "sigprop/core/moments.hpp"

namespace sigprop::fuzz {

[[noreturn]] inline void violated(const char* what, long double v) {
    std::fprintf(stderr, "invariant violated: %s = %Lg\n", what, v);
    std::abort();
}

template <class T>
void check_mean(const char* what, const T& v) {
    if (std::isnan(v)) violated(what, v);
}

template <class T>
void check_var(const char* what, const T& v) {
    if (std::isnan(v) || v < T(0)) violated(what, v);
}

template <class T>
void check_corr(const char* what, const T& v) {
    if (!(v >= T(-1) && v <= T(1))) violated(what, v);
}

template <class T>
void check(const signal<T>& y) {
    check_mean("signal.mean", y.mean);
    check_var("signal.var", y.var);
    check_corr("signal.corr", y.corr);
}

template <class T>
void check(const gradient<T>& g) {
    check_var("gradient.var", g.var);
    check_corr("gradient.corr", g.corr);
}

/// Runs f and aborts on any exception other than the ones the entry point may throw.
template <class... Allowed, class F>
void only_throws(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        if ((... || (dynamic_cast<const Allowed*>(&e) != nullptr))) return;
        std::fprintf(stderr, "unexpected exception: %s\n", e.what());
        std::abort();
    }
}

}  // namespace sigprop::fuzz
