// Text from outside the program (a server's error message, a header, a status line) made safe
// to show. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dynamodb_cache::util {

// How much of a peer's text an error message quotes: DynamoDB's longest messages (validation
// errors quoting an expression) stay whole, a hostile body cannot make a message large.
inline constexpr size_t kMaxPeerTextBytes = 512;

// `text` as one line of printable ASCII, for an error message, a log line or a terminal:
// every byte outside 0x20-0x7e (ESC, BEL, CR, LF, NUL, DEL, and each byte of UTF-8) is written
// as \xHH, and only the first `max_bytes` bytes of `text` are kept, "..." marking the cut (the
// result is at most 4 * max_bytes + 3 bytes). Printable ASCII passes unchanged, so applying it
// again changes nothing.
std::string printable(std::string_view text, size_t max_bytes = kMaxPeerTextBytes);

// Secrets shorter than this are not redacted: no real credential is (a session token is
// hundreds of bytes, a SigV4 signature 64), and replacing every "t" would garble the text.
inline constexpr size_t kMinRedactedBytes = 8;

// A run of at least this many bytes of a secret is redacted wherever it appears: a peer may
// echo part of what it was sent (cut to its own limit), and the part is a secret too. Long
// enough that random text does not match a random secret by chance.
inline constexpr size_t kMinRedactedPartBytes = 16;

// `text` with every occurrence of each string of `secrets` (of at least kMinRedactedBytes),
// of its percent-encoded form (as a peer quoting a URL or a form would echo it), and of any
// run of at least kMinRedactedPartBytes bytes of either replaced by "[redacted]": for text a
// peer sent, which may echo what it was sent (a token, a signature).
std::string redact(std::string text, const std::vector<std::string_view>& secrets);

}  // namespace dynamodb_cache::util
