#pragma once
// Decodes a fuzzer's raw bytes into parameters. Every read succeeds: past the end of the
// input it returns zeros, so any byte string is a complete test case. Numbers are drawn
// either from a table of edge cases (NaN, infinities, denormals, exact endpoints, the
// largest and smallest finite values) or from the next raw bytes, so that the fuzzer
// reaches the corners in one mutation while it can still explore every bit pattern.
// Built with -DSIGPROP_FUZZ_TRACE, every decoded value is printed: compile a target so and
// run it on a crash file to read the input that broke an invariant.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#ifdef SIGPROP_FUZZ_TRACE
#include <cstdio>
#endif

namespace sigprop::fuzz {

class byte_reader {
public:
    byte_reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

    std::uint8_t byte() { return pos_ < size_ ? data_[pos_++] : 0; }

    template <class U>
    U raw() {
        U v{};
        std::uint8_t buf[sizeof(U)] = {};
        for (auto& b : buf) b = byte();
        std::memcpy(&v, buf, sizeof(U));
        return v;
    }

    /// A value in [0, n).
    unsigned pick(unsigned n) { return n ? byte() % n : 0; }

    /// Any scalar of type T, edge cases included.
    template <class T>
    T number() {
        const T v = decode_number<T>();
        trace("number", static_cast<long double>(v));
        return v;
    }

    /// A size: small values, the boundaries of typical ranges, or any 32-bit int.
    int size() {
        const int v = decode_size();
        trace("size", v);
        return v;
    }

    bool flag() { return byte() & 1; }

private:
    static void trace([[maybe_unused]] const char* what, [[maybe_unused]] long double v) {
#ifdef SIGPROP_FUZZ_TRACE
        std::fprintf(stderr, "%s %.21Lg\n", what, v);
#endif
    }

    template <class T>
    T decode_number() {
        using lim = std::numeric_limits<T>;
        const std::uint8_t k = byte();
        switch (k % 32) {
            case 0: return T(0);
            case 1: return -T(0);
            case 2: return T(1);
            case 3: return T(-1);
            case 4: return lim::quiet_NaN();
            case 5: return lim::infinity();
            case 6: return -lim::infinity();
            case 7: return lim::denorm_min();
            case 8: return lim::min();
            case 9: return lim::max();
            case 10: return -lim::max();
            case 11: return lim::epsilon();
            case 12: return T(1) - lim::epsilon();
            case 13: return T(-1) + lim::epsilon();
            case 14: return T(0.5);
            case 15: return T(2);
            case 16: return T(1e-12);
            case 17: return T(1e12);
            case 18: return T(0.02);
            case 19: return T(raw<std::int16_t>()) / T(64);  // moderate values, both signs
            case 20: return T(raw<std::uint16_t>()) / T(65535);  // [0, 1]
            case 21: return T(2) * T(raw<std::uint16_t>()) / T(65535) - T(1);  // [-1, 1]
            default: break;
        }
        // Raw bit patterns of double, then converted: every exponent, denormals and NaN
        // payloads included.
        return T(raw<double>());
    }

    int decode_size() {
        const std::uint8_t k = byte();
        switch (k % 16) {
            case 0: return 0;
            case 1: return 1;
            case 2: return 2;
            case 3: return 3;
            case 4: return 4;
            case 5: return -1;
            case 6: return std::numeric_limits<int>::max();
            case 7: return std::numeric_limits<int>::min();
            case 8: return 64;
            case 9: return 768;
            case 10: return raw<std::int32_t>();
            default: return int(raw<std::uint16_t>() % 4096);
        }
    }

    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_{0};
};

}  // namespace sigprop::fuzz
