#pragma once
// Counter-based random numbers (Philox4x32-10 from Random123). A stream is keyed by
// (seed, experiment, stream) and indexed by a 64-bit counter, so the numbers an
// experiment sees do not depend on the order in which experiments run, on the number of
// threads, or on the backend: the GPU draws exactly the same values.
#include <cstdint>

#include <Random123/boxmuller.hpp>
#include <Random123/philox.h>
#include <Random123/uniform.hpp>

#include "sigprop/core/config.hpp"

namespace sigprop::validation {

/// Identifies one independent stream of random numbers.
struct stream_key {
    std::uint64_t seed{0};
    std::uint32_t experiment{0};
    std::uint32_t stream{0};
};

/// Philox keyed by the seed; the counter holds (experiment, stream, index_lo, index_hi).
/// Each counter value yields four 32-bit words: two standard normals (Box-Muller on two
/// 64-bit words) or two uniforms in (0, 1).
class philox_stream {
public:
    using engine = r123::Philox4x32;

    SIGPROP_HD explicit philox_stream(stream_key k) noexcept : key_{k} {}

    /// The block of four words at counter position i.
    SIGPROP_HD engine::ctr_type block(std::uint64_t i) const noexcept {
        engine::ctr_type c = {{key_.experiment, key_.stream, static_cast<std::uint32_t>(i),
                               static_cast<std::uint32_t>(i >> 32)}};
        engine::key_type k = {{static_cast<std::uint32_t>(key_.seed),
                               static_cast<std::uint32_t>(key_.seed >> 32)}};
        return engine{}(c, k);
    }

    /// The two standard normals stored at counter position i.
    SIGPROP_HD r123::double2 normal_pair(std::uint64_t i) const noexcept {
        const auto b = block(i);
        const std::uint64_t u0 = (std::uint64_t(b[1]) << 32) | b[0];
        const std::uint64_t u1 = (std::uint64_t(b[3]) << 32) | b[2];
        return r123::boxmuller(u0, u1);
    }

    /// Standard normal number n of the stream (n = 0, 1, 2, ...).
    SIGPROP_HD double normal(std::uint64_t n) const noexcept {
        const auto p = normal_pair(n >> 1);
        return (n & 1) ? p.y : p.x;
    }

    /// Uniform number n of the stream in (0, 1) (four per counter position).
    SIGPROP_HD double uniform(std::uint64_t n) const noexcept {
        const auto b = block(n >> 2);
        return r123::u01<double>(b[n & 3]);
    }

    /// Uniform numbers 0 .. n-1 of the stream (the values uniform(i) gives), one Philox
    /// block per four numbers.
    void fill_uniform(double* out, std::uint64_t n) const noexcept {
        for (std::uint64_t i = 0; i < n; i += 4) {
            const auto b = block(i >> 2);
            for (std::uint64_t k = 0; k < 4 && i + k < n; ++k) out[i + k] = r123::u01<double>(b[k]);
        }
    }

    SIGPROP_HD stream_key key() const noexcept { return key_; }

private:
    stream_key key_;
};

/// Sequential reader of a stream: fills buffers with consecutive normals.
class normal_sequence {
public:
    explicit normal_sequence(stream_key k) noexcept : s_{k} {}

    /// Fills out[0 .. n) with the next n standard normals.
    void fill(double* out, std::uint64_t n) noexcept {
        std::uint64_t i = 0;
        if ((pos_ & 1) && n > 0) out[i++] = s_.normal(pos_++);
        for (; i + 1 < n; i += 2, pos_ += 2) {
            const auto p = s_.normal_pair(pos_ >> 1);
            out[i] = p.x;
            out[i + 1] = p.y;
        }
        if (i < n) out[i] = s_.normal(pos_++);
    }

    double next() noexcept { return s_.normal(pos_++); }

    /// The key of the stream this reader draws from.
    stream_key key() const noexcept { return s_.key(); }

private:
    philox_stream s_;
    std::uint64_t pos_{0};
};

}  // namespace sigprop::validation
