// Counter-based random numbers: every value is a pure function of (seed, stream, index).
//
// Why counter-based: a dropout mask element i must not depend on which thread computed it, nor on
// how many threads there are, so the same seed gives the same mask with 1 or 2 threads. A stream
// is one use (one dropout call, one initialisation); Rng hands out stream numbers in order, so its
// whole state is two integers and goes into checkpoints for exact resume.
#pragma once

#include <cmath>
#include <cstdint>

namespace payless {

class Tensor;

// SplitMix64's finaliser: a fast bijective mix with good avalanche, used as the hash.
inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The part of the hash that is the same for every index of one (seed, stream): loops compute it
// once, then only the final mix64 per element.
inline uint64_t stream_key(uint64_t seed, uint64_t stream) {
  return mix64(seed ^ 0x9e3779b97f4a7c15ULL) + stream * 0xd1b54a32d192ed03ULL;
}

// The 24 random bits of draw `index`: an integer in [0, 2^24).
inline uint64_t random_bits24(uint64_t key, uint64_t index) { return mix64(key + index) >> 40; }

// One dropout call's mask: element i is kept, and scaled by keep_scale = 1 / (1 - p), when
// random_bits24(key, i) >= min_kept_bits = ceil(p · 2^24), else zeroed (probability p). The
// dropout op and the fused attention kernels draw their masks with it, so the same (seed, stream)
// gives the same mask in both.
struct DropoutMask {
  uint64_t key = 0, min_kept_bits = 0;
  float keep_scale = 1.0f;
};
inline DropoutMask dropout_mask(float p, uint64_t seed, uint64_t stream) {
  return {stream_key(seed, stream), static_cast<uint64_t>(std::ceil(static_cast<double>(p) * 16777216.0)),
          1.0f / (1.0f - p)};
}

// Uniform in [0, 1) with 24 random bits, from (seed, stream, index).
inline float uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  return static_cast<float>(random_bits24(stream_key(seed, stream), index)) * (1.0f / 16777216.0f);
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 1) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t streams_used() const { return next_stream_; }
  // A fresh stream number for one use; the only state that advances.
  uint64_t take_stream() { return next_stream_++; }
  void restore(uint64_t seed, uint64_t streams_used) {
    seed_ = seed;
    next_stream_ = streams_used;
  }

  // Fill a tensor (each call takes one stream).
  void uniform_(Tensor& t, float low, float high);
  void normal_(Tensor& t, float mean, float stddev);
  // Glorot/Xavier uniform for a (fan_out, fan_in) weight: bound sqrt(6 / (fan_in + fan_out)).
  void xavier_uniform_(Tensor& t);

 private:
  uint64_t seed_;
  uint64_t next_stream_ = 0;
};

// The process-wide generator that layers use for initialisation and dropout by default.
Rng& global_rng();
void manual_seed(uint64_t seed);

}  // namespace payless
