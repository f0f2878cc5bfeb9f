#pragma once
// Markdown fragments that tests write for docs/RELIABILITY.md when SIGPROP_RELIABILITY_OUT
// names a folder (scripts/reliability-doc.sh sets it and splices the fragments into the
// doc), so that the doc's tables are produced by the checks themselves.
#include <cstdlib>
#include <fstream>
#include <string>

namespace sigprop::reliability {

/// Writes `text` to $SIGPROP_RELIABILITY_OUT/name; does nothing when the variable is unset.
inline void write_fragment(const std::string& name, const std::string& text) {
    const char* dir = std::getenv("SIGPROP_RELIABILITY_OUT");
    if (!dir) return;
    std::ofstream(std::string(dir) + "/" + name) << text;
}

}  // namespace sigprop::reliability
