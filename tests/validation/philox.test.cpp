// The validator's random streams: the published Philox4x32-10 answers, determinism,
// independence of differently keyed streams, and that the sequential reader hands out
// exactly the stream's numbers whichever way it is read.
#include <cmath>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

#include "sigprop/validation/philox.hpp"

using sigprop::validation::normal_sequence;
using sigprop::validation::philox_stream;
using sigprop::validation::stream_key;

namespace {

// Sample correlation of two equally long sequences of standard normals (known mean 0,
// variance 1): its standard error is 1/sqrt(n).
double correlation(const std::vector<double>& a, const std::vector<double>& b) {
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        ab += a[i] * b[i];
        aa += a[i] * a[i];
        bb += b[i] * b[i];
    }
    return ab / std::sqrt(aa * bb);
}

std::vector<double> normals(stream_key k, std::size_t n) {
    std::vector<double> v(n);
    normal_sequence s{k};
    s.fill(v.data(), n);
    return v;
}

}  // namespace

TEST_CASE("philox: the stream's blocks are the published Philox4x32-10 answers") {
    // Random123's known-answer vectors; the key is the seed, the counter is
    // (experiment, stream, index low word, index high word).
    const auto zero = philox_stream{stream_key{0, 0, 0}}.block(0);
    CHECK(zero[0] == 0x6627e8d5u);
    CHECK(zero[1] == 0xe169c58du);
    CHECK(zero[2] == 0xbc57ac4cu);
    CHECK(zero[3] == 0x9b00dbd8u);

    const auto ones = philox_stream{stream_key{~std::uint64_t(0), 0xffffffffu, 0xffffffffu}}
                          .block(~std::uint64_t(0));
    CHECK(ones[0] == 0x408f276du);
    CHECK(ones[1] == 0x41c83b0eu);
    CHECK(ones[2] == 0xa20bc7c6u);
    CHECK(ones[3] == 0x6d5451fdu);

    const auto pi = philox_stream{stream_key{0x299f31d0a4093822ull, 0x243f6a88u, 0x85a308d3u}}
                        .block(0x0370734413198a2eull);
    CHECK(pi[0] == 0xd16cfe09u);
    CHECK(pi[1] == 0x94fdccebu);
    CHECK(pi[2] == 0x5001e420u);
    CHECK(pi[3] == 0x24126ea1u);
}

TEST_CASE("philox: the same key gives the same numbers, at any position and in any order") {
    const stream_key k{20240311, 7, 3};
    const philox_stream a{k}, b{k};
    for (std::uint64_t n : {0ull, 1ull, 2ull, 1000ull, (1ull << 32) + 5, (1ull << 40) + 1}) {
        CHECK(a.normal(n) == b.normal(n));
        CHECK(a.uniform(n) == b.uniform(n));
    }
    // Reading backwards gives what reading forwards gave: nothing depends on history.
    std::vector<double> fwd(100);
    for (std::uint64_t n = 0; n < 100; ++n) fwd[n] = a.normal(n);
    for (std::uint64_t n = 100; n-- > 0;) CHECK(b.normal(n) == fwd[n]);
    CHECK(a.key().seed == k.seed);
    CHECK(a.key().experiment == k.experiment);
    CHECK(a.key().stream == k.stream);
}

TEST_CASE("philox: the index's high word is part of the counter") {
    const philox_stream s{stream_key{1, 2, 3}};
    CHECK(s.normal(2) != s.normal((1ull << 33) + 2));  // block 1 vs block 2^32 + 1
    CHECK(s.uniform(4) != s.uniform((1ull << 34) + 4));
}

TEST_CASE("philox: uniforms lie in the unit interval without 0, normals are standard") {
    const philox_stream s{stream_key{99, 1, 1}};
    const int n = 40000;
    double sum = 0, sum2 = 0, usum = 0;
    int outside = 0;
    for (int i = 0; i < n; ++i) {
        const double u = s.uniform(std::uint64_t(i));
        if (!(u > 0.0 && u <= 1.0)) ++outside;
        usum += u;
        const double z = s.normal(std::uint64_t(i));
        sum += z;
        sum2 += z * z;
    }
    CHECK(outside == 0);
    // Standard errors: uniform mean 1/sqrt(12 n), normal mean 1/sqrt(n), E[z^2] sqrt(2/n).
    CHECK(std::abs(usum / n - 0.5) < 5 / std::sqrt(12.0 * n));
    CHECK(std::abs(sum / n) < 5 / std::sqrt(double(n)));
    CHECK(std::abs(sum2 / n - 1) < 5 * std::sqrt(2.0 / n));
}

TEST_CASE("philox: streams with different keys are uncorrelated") {
    const std::size_t n = 20000;
    const double limit = 5 / std::sqrt(double(n));  // 5 standard errors of a correlation
    const stream_key base{12345, 3, 8};
    const auto x = normals(base, n);
    const stream_key others[] = {
        {12346, 3, 8},             // next seed
        {12345 + (1ull << 32), 3, 8},  // seed's high word
        {12345, 4, 8},             // next experiment
        {12345, 3, 9},             // next stream
        {12345, 8, 3},             // experiment and stream swapped
    };
    for (const auto& k : others) {
        const auto y = normals(k, n);
        CHECK(y != x);
        CHECK(std::abs(correlation(x, y)) < limit);
    }
    // Within one stream, neighbours (the two halves of a Box-Muller pair) are uncorrelated too.
    std::vector<double> even(n / 2), odd(n / 2);
    for (std::size_t i = 0; i < n / 2; ++i) {
        even[i] = x[2 * i];
        odd[i] = x[2 * i + 1];
    }
    CHECK(std::abs(correlation(even, odd)) < 5 / std::sqrt(double(n / 2)));
}

TEST_CASE("normal_sequence: fill() hands out exactly what next() and normal(n) give") {
    const stream_key k{777, 5, 2};
    const philox_stream s{k};
    normal_sequence by_fill{k}, by_next{k};
    // Chunks of odd and even length, empty ones, and reads that start at odd positions.
    const std::uint64_t chunks[] = {3, 4, 1, 0, 5, 2, 2, 1, 0, 1, 7, 64, 9};
    std::uint64_t pos = 0;
    std::vector<double> buf;
    for (std::uint64_t c : chunks) {
        buf.assign(c + 1, -12345.0);  // one guard element past the end
        by_fill.fill(buf.data(), c);
        for (std::uint64_t i = 0; i < c; ++i, ++pos) {
            CHECK(buf[i] == s.normal(pos));
            CHECK(by_next.next() == buf[i]);
        }
        CHECK(buf[c] == -12345.0);  // nothing written past n
    }
    // Both readers are at the same position afterwards.
    CHECK(by_fill.next() == by_next.next());
    CHECK(by_next.next() == s.normal(pos + 1));
}

TEST_CASE("philox: fill_uniform() gives exactly what uniform(n) gives") {
    const philox_stream s{stream_key{4, 3, 2}};
    for (std::uint64_t n : {0ull, 1ull, 3ull, 4ull, 5ull, 11ull}) {
        std::vector<double> u(n + 1, -1.0);
        s.fill_uniform(u.data(), n);
        for (std::uint64_t i = 0; i < n; ++i) CHECK(u[i] == s.uniform(i));
        CHECK(u[n] == -1.0);  // nothing written past n
    }
}
