// The buffer cache behind every Storage (core/tensor.cpp): size classes and reuse across
// batches whose shapes vary, as token-budget batches do.
#include <catch2/catch.hpp>

#include <algorithm>

#include "core/tensor.h"

using namespace payless;

TEST_CASE("size classes round up by at most an eighth and are monotone", "[memory][cache]") {
  CHECK(size_class_bytes(0) == 64);
  CHECK(size_class_bytes(1) == 64);
  CHECK(size_class_bytes(16) == 64);
  CHECK(size_class_bytes(17) == 128);
  CHECK(size_class_bytes(1024) == 4096);
  CHECK(size_class_bytes(1025) == 4608);  // 4100 bytes -> next multiple of 512
  size_t previous = 0;
  for (int64_t n = 1; n < 3000000; n += 1 + n / 97) {
    const size_t bytes = size_class_bytes(n);
    INFO("n = " << n);
    REQUIRE(bytes >= static_cast<size_t>(n) * sizeof(float));
    REQUIRE(bytes % 64 == 0);
    REQUIRE(bytes >= previous);
    if (n * 4 > 4096) REQUIRE(bytes <= static_cast<size_t>(n) * 4 * 9 / 8);
    previous = bytes;
  }
}

TEST_CASE("batches of varying shape reuse cached buffers", "[memory][cache]") {
  // Forty "batches" whose activations are a few percent larger or smaller each time.
  auto batch = [](int i) {
    const int64_t tokens = 2000 + (i * 37) % 90;  // 2000..2089 tokens, never the same twice in a row
    Tensor a = Tensor::empty({tokens, 256});
    Tensor b = Tensor::empty({tokens, 1024});
    a.data()[0] = b.data()[0] = 1.0f;
  };
  batch(0);
  const BufferCacheStats before = buffer_cache_stats();
  for (int i = 1; i <= 40; ++i) batch(i);
  const BufferCacheStats after = buffer_cache_stats();
#ifdef PAYLESS_NO_BUFFER_CACHE
  CHECK(after.hits == before.hits);  // sanitizer builds: no cache, every buffer freed at once
  CHECK(after.cached_bytes == 0);
#else
  // 2000..2089 tokens span at most two classes for each buffer: after the first few batches
  // every request is served from the cache and nothing more is kept.
  CHECK(after.hits - before.hits >= 80 - 4);
  CHECK(after.misses - before.misses <= 4);
  CHECK(after.cached_bytes <= before.cached_bytes + 2 * size_class_bytes(2089 * 1024) +
                                  2 * size_class_bytes(2089 * 256));
#endif
}

TEST_CASE("the cache keeps more than 1 GiB once the process has used more", "[memory][cache]") {
  // Four 512 MiB buffers in use at once (never written: address space, not RAM), then freed, then
  // two wanted again. A fixed 1 GiB limit keeps at most one of them next to what earlier tests
  // left cached; the limit follows the 2 GiB this process has now had in use, so both are found.
  const int64_t n = int64_t{1} << 27;  // floats: 512 MiB
  const BufferCacheStats before = buffer_cache_stats();
  {
    Tensor a = Tensor::empty({n}), b = Tensor::empty({n}), c = Tensor::empty({n}),
           d = Tensor::empty({n});
  }
  const BufferCacheStats freed = buffer_cache_stats();
  {
    Tensor a = Tensor::empty({n}), b = Tensor::empty({n});
  }
  const BufferCacheStats again = buffer_cache_stats();
#ifdef PAYLESS_NO_BUFFER_CACHE
  CHECK(again.cached_bytes == 0);
  CHECK(again.hits == before.hits);
#else
  CHECK(freed.peak_live_bytes >= before.live_bytes + 4 * size_class_bytes(n));
  CHECK(freed.cached_bytes >= before.cached_bytes + 2 * size_class_bytes(n));
  CHECK(again.hits - freed.hits == 2);  // nothing new allocated
  CHECK(again.cached_bytes <= std::max<size_t>(size_t{1} << 30, again.peak_live_bytes));
#endif
}
