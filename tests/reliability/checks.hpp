#pragma once
// The invariants of DESIGN.md ("Errors") as predicates, and a tally that records the
// first point that breaks one, so a sweep of 1e5 points makes one doctest assertion per
// invariant instead of 1e5 (and still shows the offending input when it fails).
#include <cmath>
#include <sstream>
#include <string>

#include "sigprop/core/moments.hpp"

namespace sigprop::reliability {

inline bool good_mean(double v) { return !std::isnan(v); }
inline bool good_var(double v) { return !std::isnan(v) && v >= 0; }  // +inf allowed
inline bool good_corr(double v) { return v >= -1 && v <= 1; }
inline bool good(const signal<double>& y) { return good_mean(y.mean) && good_var(y.var) && good_corr(y.corr); }
inline bool good(const gradient<double>& g) { return good_var(g.var) && good_corr(g.corr); }

inline std::string show(const signal<double>& s) {
    std::ostringstream os;
    os.precision(17);
    os << "{mean " << s.mean << ", var " << s.var << ", corr " << s.corr << "}";
    return os.str();
}
inline std::string show(const gradient<double>& g) {
    std::ostringstream os;
    os.precision(17);
    os << "{var " << g.var << ", corr " << g.corr << "}";
    return os.str();
}

/// Counts points and failures; keeps the description of the first failure.
struct tally {
    long long points = 0, failures = 0;
    std::string first;
    void record(bool ok, const std::string& what) {
        ++points;
        if (!ok && failures++ == 0) first = what;
    }
    template <class F>
    void record_lazy(bool ok, F describe) {
        ++points;
        if (!ok && failures++ == 0) first = describe();
    }
};

}  // namespace sigprop::reliability
