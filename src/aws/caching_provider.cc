// make_caching_provider (aws.h): credentials cached and refreshed ahead of their expiry by one
// fetcher at a time, with backoff, static stability and bounded invalidations.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>

#include "aws/fetch_deadline.h"
#include "aws/providers.h"
#include "dynamodb_cache/aws.h"
#include "dynamodb_cache/errors.h"
#include "util/log.h"
#include "util/random.h"
#include "util/time.h"

namespace dynamodb_cache::aws {

namespace {

class CachingProvider final : public CredentialsProvider {
 public:
  // Between refresh attempts while usable credentials are held (inside the refresh window,
  // or extended for static stability).
  static constexpr std::chrono::seconds kRetryWhileUsable{10};
  // Between attempts while none are usable: 1, 2, 4, 8, then 10 s.
  static constexpr std::chrono::seconds kFirstBackoff{1};
  static constexpr std::chrono::seconds kMaxBackoff{10};

  CachingProvider(std::shared_ptr<CredentialsProvider> inner, std::chrono::seconds before,
                  std::function<SystemClock::time_point()> now)
      : inner_(std::move(inner)), before_(before), now_(std::move(now)) {
    if (!now_) now_ = [] { return SystemClock::now(); };
  }

  void invalidate() override {
    std::lock_guard lock(mu_);
    // The service refused them: fetch again at the next get(), unless a fetch failed (or
    // gave expired credentials) so recently that its backoff still runs. Every request in
    // flight with them sees the refusal, and new credentials may be refused too (a clock
    // skewed against their issuer): one invalidation per backoff interval, or each request
    // would cause a fetch of its own.
    const auto now = now_();
    if (last_invalidation_ && now < *last_invalidation_ + invalidation_gap_) return;
    invalidation_gap_ = last_invalidation_ && now < *last_invalidation_ + 2 * kMaxBackoff
                            ? std::min<std::chrono::seconds>(invalidation_gap_ * 2, kMaxBackoff)
                            : kFirstBackoff;
    last_invalidation_ = now;
    stale_ = true;
    inner_->invalidate();
  }

  Credentials get() override {
    // Declared before the lock, so it speaks after the lock is released: a hook may call
    // anything, this provider included.
    struct SayAfterUnlock {
      std::string text;
      ~SayAfterUnlock() {
        if (!text.empty()) dynamodb_cache::detail::log_to({}, LogLevel::kWarning, text);
      }
    } say;
    std::unique_lock lock(mu_);
    SystemClock::time_point now;
    for (bool fetch = false; !fetch;) {
      now = now_();
      switch (step_at(now)) {
        case Step::kUseCached:
          return *cached_;
        case Step::kRethrow:
          std::rethrow_exception(last_error_);
        case Step::kWait:
          wait_for_fetch(lock);
          break;
        case Step::kFetch:
          fetch = true;
          break;
      }
    }
    refreshing_ = true;
    lock.unlock();
    std::optional<Credentials> got;
    std::exception_ptr error;
    try {
      got = inner_->get();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    refreshing_ = false;
    cv_.notify_all();
    now = now_();
    if (got) {
      failures_ = 0;
      last_error_ = nullptr;
      stale_ = false;
      cached_ = std::move(*got);
      usable_until_ = cached_->expiration;
      extended_ = false;
      if (usable_until_ && *usable_until_ <= now) {
        // Already expired when they came: use them a while rather than fetch on every call.
        say.text = extend(now, "came back already expired");
        next_attempt_ = now + kRetryWhileUsable;
      } else if (usable_until_ && now >= *usable_until_ - before_) {
        next_attempt_ = now + kRetryWhileUsable;  // inside the refresh window already
      } else {
        next_attempt_ = {};
      }
      return *cached_;
    }
    last_error_ = error;
    ++failures_;
    if (cached_ && usable_until_ && now >= *usable_until_ && !extended_)
      say.text = extend(now, "could not be refreshed");
    const bool usable = usable_at(now);
    next_attempt_ = now + (usable ? kRetryWhileUsable : backoff());
    if (usable) return *cached_;
    std::rethrow_exception(error);
  }

  // The client's call, once per request: fresh credentials are copied into `out`'s buffers
  // (no allocation once they fit); anything else takes get()'s path.
  void get_into(Credentials& out) override {
    {
      std::lock_guard lock(mu_);
      if (fresh_at(now_())) {
        out = *cached_;
        return;
      }
    }
    out = get();
  }

  Cached try_get_into(Credentials& out) override {
    std::lock_guard lock(mu_);
    const auto now = now_();
    switch (step_at(now)) {
      case Step::kUseCached:
        out = *cached_;
        return Cached::kReady;
      case Step::kFetch:
        if (!usable_at(now) || stale_) return Cached::kNone;
        out = *cached_;  // inside the refresh window: still valid while someone refreshes
        return Cached::kRefreshDue;
      default:
        return Cached::kNone;
    }
  }

 private:
  // What a get() finds: use the cached credentials (fresh; or still usable while another
  // thread refreshes them or while a failed refresh backs off), rethrow the last error
  // (nothing usable, backing off), wait for another thread's fetch, or fetch. mu_ held.
  enum class Step { kUseCached, kRethrow, kWait, kFetch };
  Step step_at(SystemClock::time_point now) const {
    const bool usable = usable_at(now);
    if (fresh_at(now)) return Step::kUseCached;
    if (refreshing_) return usable && !stale_ ? Step::kUseCached : Step::kWait;
    if (now < next_attempt_ && (usable || last_error_)) return usable ? Step::kUseCached : Step::kRethrow;
    return Step::kFetch;
  }

  // Waits for another thread's fetch to end, until this thread's fetch deadline (the
  // client's operation deadline) at most. mu_ held through `lock`.
  void wait_for_fetch(std::unique_lock<std::mutex>& lock) {
    const auto& d = detail::current_fetch_deadline();
    if (!d) return cv_.wait(lock);
    if (cv_.wait_until(lock, d->at) == std::cv_status::timeout && refreshing_)
      throw CredentialsError("credentials: still being fetched by another thread; " + detail::deadline_text(),
                             true);
  }

  // Called with mu_ held.
  bool usable_at(SystemClock::time_point now) const { return cached_ && (!usable_until_ || now < *usable_until_); }
  bool fresh_at(SystemClock::time_point now) const {
    return usable_at(now) && !stale_ && !extended_ && (!usable_until_ || now < *usable_until_ - before_);
  }

  std::chrono::seconds backoff() const {
    auto b = kFirstBackoff * (1 << std::min(failures_ - 1, 4));
    return std::min<std::chrono::seconds>(b, kMaxBackoff);
  }

  // Static stability: keeps expired credentials usable for 5-10 minutes (jittered, so a
  // fleet does not come back at once). Called with mu_ held. Returns the warning to log once
  // the lock is released (empty: said already; each provider says it once).
  std::string extend(SystemClock::time_point now, const char* why) {
    auto extra = std::chrono::seconds(300 + static_cast<int>(util::thread_rng()() % 301));
    usable_until_ = now + extra;
    extended_ = true;
    if (warned_) return {};
    warned_ = true;
    return "credentials from " + cached_->provider + " " + why + "; using them " +
           std::to_string(extra.count()) + " more seconds and trying again meanwhile";
  }

  std::shared_ptr<CredentialsProvider> inner_;
  std::chrono::seconds before_;
  std::function<SystemClock::time_point()> now_;
  std::mutex mu_;
  std::condition_variable cv_;
  // All guarded by mu_.
  std::optional<Credentials> cached_;
  std::optional<SystemClock::time_point> usable_until_;  // expiration, or the extension
  bool warned_ = false;                                  // extend() has said it once
  bool extended_ = false;            // usable_until_ is an extension (granted once per set)
  bool stale_ = false;               // invalidated: fetch again when the backoff allows
  bool refreshing_ = false;          // a thread is calling inner_
  int failures_ = 0;                 // consecutive failed fetches
  std::optional<SystemClock::time_point> last_invalidation_;  // the last one honoured
  std::chrono::seconds invalidation_gap_{kFirstBackoff};      // before the next is honoured
  SystemClock::time_point next_attempt_{};
  std::exception_ptr last_error_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> make_caching_provider(std::shared_ptr<CredentialsProvider> inner,
                                                           std::chrono::seconds refresh_before,
                                                           std::function<SystemClock::time_point()> now) {
  return std::make_shared<CachingProvider>(std::move(inner), refresh_before, std::move(now));
}

}  // namespace dynamodb_cache::aws
