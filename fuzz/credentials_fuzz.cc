// libFuzzer target: the parsers of what credential sources hand us (src/aws/parsers.h).
// The first byte picks the parser, the rest is its input. Typed errors are the expected
// answer to bad input; anything else (a crash, another exception, a sanitizer report) is a
// finding. Each parsed result is checked against the contract the providers rely on.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "aws/parsers.h"
#include "dynamodb_cache/errors.h"

namespace {

using namespace dynamodb_cache;
namespace detail = dynamodb_cache::aws::detail;

void check(bool ok) {
  if (!ok) std::abort();
}

void check_credentials(const aws::Credentials& c) {
  check(!c.access_key_id.empty() && !c.secret_access_key.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 9) {
      case 0: {
        auto ini = detail::parse_ini(in);
        for (const auto& [name, section] : ini)
          for (const auto& [key, value] : section) {
            (void)value;
            check(!key.empty());
            for (char ch : key) check(ch < 'A' || ch > 'Z');  // keys are lower-cased
          }
        break;
      }
      case 1: check_credentials(detail::parse_metadata_credentials(in, "imds")); break;
      case 2: check_credentials(detail::parse_process_credentials(in, "credential_process")); break;
      case 3: {
        auto c = detail::parse_sts_credentials(in, "sts");
        check_credentials(c);
        check(!c.session_token.empty() && c.expiration.has_value());
        break;
      }
      case 4: (void)detail::parse_sts_error(in); break;
      case 5: {
        auto t = detail::parse_sso_token(in);
        check(!t.access_token.empty());
        // What is written back parses to the same token.
        auto again = detail::parse_sso_token(detail::sso_token_json(t));
        check(again.access_token == t.access_token && again.refresh_token == t.refresh_token &&
              again.client_secret == t.client_secret);
        break;
      }
      case 6: {
        auto c = detail::parse_sso_role_credentials(in, "sso");
        check_credentials(c);
        check(c.expiration.has_value());
        break;
      }
      case 7: {
        auto r = detail::parse_sso_oidc_token(in);
        check(!r.access_token.empty() && r.expires_in.count() > 0);
        break;
      }
      case 8: (void)detail::parse_ini(in).size(); break;
    }
  } catch (const CredentialsError&) {
  } catch (const ConfigError&) {
  }
  return 0;
}
