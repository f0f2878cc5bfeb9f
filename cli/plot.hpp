#pragma once
// --plot FILE.png: a 4-panel figure (stream variance, token correlation, gradient
// variance, weight-gradient norms against the layer) drawn by gnuplot.
#include <string>

#include "cli/diagnostics.hpp"

namespace sigprop::cli {

/// The gnuplot executable: $SIGPROP_GNUPLOT if set, else `gnuplot` on the PATH; empty when
/// there is none.
std::string find_gnuplot();

/// Draws the figure. Returns false, with one line on stderr, when gnuplot is missing or
/// fails: the plot is an extra, so the caller's other output and exit status stay as they
/// are.
bool plot(const std::string& png, const diagnostics& d, const std::string& title);

}  // namespace sigprop::cli
