// After DeviceState went out, only the destination can say whether a live
// move committed (docs/live_move.md "Resolution"). MoveResolver turns what
// stream 0 brought back, and if that is not Committed what the destination
// ferryd answers, into the move's outcome: committed (the VM runs there),
// aborted (it resumes here) or in doubt (it stays paused here until an admin
// checks). It decides only; the caller stops streams, resumes or finishes.
//
// The ferryd is asked through DestinationAsker: PeerDestinationAsker
// (peer/peer_client.h) in the engine, a fake in tests
// (tests/unit/appliance/move_resolver_test.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "base/result.h"
#include "peer/peer_client.h"
#include "protocol/move_protocol.h"

namespace appliance {

// The destination ferryd's verdict on a migration.
class DestinationAsker {
 public:
  virtual ~DestinationAsker() = default;
  // Committed, aborted or unknown there; "running" and an unreachable
  // ferryd are errors (no verdict), as AskMoveState returns them.
  virtual base::Result<RemoteMoveState> AskMoveState(const std::string& migration_id) = 0;
  // "host:port" of the ferryd asked, for messages.
  virtual std::string Where() const = 0;
};

// The real one: a fresh control connection per question (AskMoveState).
class PeerDestinationAsker final : public DestinationAsker {
 public:
  PeerDestinationAsker(PeerEndpoint control, int timeout_ms)
      : control_(std::move(control)), timeout_ms_(timeout_ms) {}
  base::Result<RemoteMoveState> AskMoveState(const std::string& migration_id) override;
  std::string Where() const override { return control_.ToString(); }

 private:
  PeerEndpoint control_;
  int timeout_ms_;
};

// What stream 0's reader brought back after DeviceState.
struct StreamVerdict {
  bool committed = false;                   // a Committed frame
  std::optional<base::Error> dest_error;    // the destination's error frame
  std::optional<base::Error> reader_error;  // stream 0 failed or closed
};

enum class MoveOutcome { kCommitted = 1, kAborted = 2, kInDoubt = 3 };

struct Resolution {
  MoveOutcome outcome = MoveOutcome::kInDoubt;
  std::optional<base::Error> error;  // kAborted, kInDoubt: what the move reports
};

class MoveResolver {
 public:
  struct Options {
    std::string migration_id;
    std::string peer;           // "host:port" of the incoming worker, for messages
    int commit_timeout_ms = 0;  // how long stream 0 was waited on, for messages
    int retry_ms = 0;           // how long the ferryd is asked again (at least once)
    int ask_interval_ms = 1000;
    // Seams for tests, so nothing sleeps: the clock and the wait between asks.
    std::function<uint64_t()> now_ns;   // default base::MonotonicNanos
    std::function<void(int)> sleep_ms;  // default std::this_thread::sleep_for
  };

  // asker: nullptr when there is no destination ferryd to ask (tests, a bare
  // worker pair); borrowed, must outlive the resolver.
  MoveResolver(Options options, DestinationAsker* asker);

  // Why stream 0 did not bring Committed (the error frame first, then the
  // stream's failure, else no answer within commit_timeout_ms); nullopt if
  // it did.
  std::optional<base::Error> WhyNotCommitted(const StreamVerdict& stream) const;

  // The outcome once stream 0 did not bring Committed. error_frame: the
  // cause is the destination's error frame. Without an asker, an error frame
  // is the destination's own verdict (it sends one only while it has not
  // committed, and then never commits): aborted; anything else is in doubt.
  // With one, the ferryd is asked until it says committed or aborted, or
  // retry_ms passes (then in doubt); "unknown" is asked again (a ferryd that
  // has not recovered its records yet).
  Resolution Settle(const base::Error& cause, bool error_frame);

 private:
  Resolution Aborted(const base::Error& cause, const std::string& how) const;

  Options opt_;
  DestinationAsker* asker_;
};

}  // namespace appliance
