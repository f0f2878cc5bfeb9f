#include "cli/plot.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include <unistd.h>

#include "sigprop/validation/output_file.hpp"

namespace sigprop::cli {

std::string find_gnuplot() {
    if (const char* env = std::getenv("SIGPROP_GNUPLOT")) return ::access(env, X_OK) == 0 ? env : "";
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/bin:/bin";
    std::size_t pos = 0;
    while (pos <= dirs.size()) {
        const auto colon = std::min(dirs.find(':', pos), dirs.size());
        const std::string candidate = dirs.substr(pos, colon - pos) + "/gnuplot";
        if (colon > pos && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        pos = colon + 1;
    }
    return "";
}

namespace {

/// gnuplot's missing-data mark for what a log axis cannot show (0, overflow).
std::string cell(double v, bool log_axis) {
    if (!std::isfinite(v) || (log_axis && !(v > 0))) return "?";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.10g", v);
    return buf;
}

/// Single quotes for a gnuplot string literal.
std::string quoted(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("''") : std::string(1, c);
    return q + "'";
}

}  // namespace

bool plot(const std::string& png, const diagnostics& d, const std::string& title) {
    const std::string gp = find_gnuplot();
    if (gp.empty()) {
        std::fprintf(stderr, "sigprop: --plot needs gnuplot (Debian: apt-get install gnuplot-nox); no plot written\n");
        return false;
    }
    namespace fs = std::filesystem;
    // gnuplot writes the PNG under a temporary name that is renamed once it is complete;
    // its data goes to a scratch file that is never committed, so both are removed on any
    // failure and on SIGINT/SIGTERM (validation/output_file.hpp).
    std::optional<validation::output_file> image, scratch;
    try {
        image.emplace(png);
        scratch.emplace((fs::temp_directory_path() / ("sigprop-plot-" + std::to_string(::getpid()) + ".dat")).string());
    } catch (const validation::output_error& e) {
        std::fprintf(stderr, "sigprop: %s; no plot written\n", e.what());
        return false;
    }
    const std::string data = scratch->temp_path();
    {
        std::ostream& f = scratch->stream();
        // x = layer in spec.sigmas order (an encoder-decoder's decoder follows its encoder).
        f << "0 " << cell(d.input.var, true) << ' ' << cell(d.input.corr, false) << ' '
          << cell(d.input_grad.var, true) << " ?\n";
        for (const auto& r : d.rows)
            f << r.index + 1 << ' ' << cell(r.x.var, true) << ' ' << cell(r.x.corr, false) << ' '
              << cell(r.g.var, true) << ' ' << cell(r.weight_grad, true) << '\n';
        if (!f.flush()) {
            std::fprintf(stderr, "sigprop: cannot write a temporary file for --plot; no plot written\n");
            return false;
        }
    }
    const std::string dq = quoted(data);
    std::string script = "set datafile missing '?'\n"
                         "set terminal pngcairo size 1400,1000 noenhanced font ',10'\n"
                         "set output " + quoted(image->temp_path()) + "\n"
                         "set multiplot layout 2,2 title " + quoted(title) + "\n"
                         "set key off\nset grid\nset xlabel 'layer'\n";
    // The wide-range quantities on log axes; the correlation on a linear one with the
    // rank-collapse line.
    script += "set logscale y\nset title 'forward: stream variance'\nplot " + dq + " using 1:2 with lines lw 2\n";
    script += "unset logscale y\nset yrange [*:1]\nset title 'forward: token correlation (dashed: 0.99)'\n"
              "plot " + dq + " using 1:3 with lines lw 2, 0.99 with lines dt 2\nset yrange [*:*]\n";
    script += "set logscale y\nset title 'backward: gradient variance'\nplot " + dq + " using 1:4 with lines lw 2\n";
    script += "set title 'weight gradients: sum of E|dW|^2 per layer'\nplot " + dq + " using 1:5 with lines lw 2\n";
    script += "unset multiplot\n";
    const std::string cmd = "'" + gp + "' 2>/dev/null";
    std::FILE* p = ::popen(cmd.c_str(), "w");
    bool ok = p != nullptr;
    if (p) {
        std::fputs(script.c_str(), p);
        ok = ::pclose(p) == 0;
    }
    std::error_code ec;
    if (!ok || fs::file_size(image->temp_path(), ec) == 0 || ec) {
        std::fprintf(stderr, "sigprop: gnuplot could not write '%s'; no plot written\n", png.c_str());
        return false;
    }
    try {
        image->commit();
    } catch (const validation::output_error& e) {
        std::fprintf(stderr, "sigprop: %s; no plot written\n", e.what());
        return false;
    }
    return true;
}

}  // namespace sigprop::cli
