// The library's source of non-cryptographic randomness: jitter of delays and TTLs (private).
// Secrets and tokens come from util::random_hex (crypto.h), never from here.
#pragma once

#include <random>

namespace dynamodb_cache::util {

// This thread's generator, seeded once per thread from std::random_device. Thread-safe
// (one per thread); not for anything an adversary must not guess.
inline std::minstd_rand& thread_rng() {
  thread_local std::minstd_rand rng{std::random_device{}()};
  return rng;
}

}  // namespace dynamodb_cache::util
