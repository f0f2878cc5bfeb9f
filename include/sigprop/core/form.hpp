#pragma once
// Which closed form a component evaluates.

namespace sigprop {

/// `best` is the most accurate form this library has (the default). `paper` is the form
/// published in Kedia et al. (ICML 2024), Table 1, kept so both can be compared;
/// `paper_large_l` is the paper's large-L approximation, which only the softmax has.
/// A component that has a single form accepts `best` and `paper` alike.
enum class form : unsigned char { best, paper, paper_large_l };

inline constexpr const char* to_string(form f) noexcept {
    switch (f) {
        case form::best: return "best";
        case form::paper: return "paper";
        case form::paper_large_l: return "paper_large_l";
    }
    return "unknown";
}

}  // namespace sigprop
