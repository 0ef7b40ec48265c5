#include "move_resolver.h"

#include <chrono>
#include <thread>

#include "base/clock.h"

namespace appliance {
namespace {

constexpr const char* kInDoubt = "move in doubt: lost the destination ";

}  // namespace

base::Result<RemoteMoveState> PeerDestinationAsker::AskMoveState(const std::string& migration_id) {
  return appliance::AskMoveState(control_, migration_id, timeout_ms_);
}

MoveResolver::MoveResolver(Options options, DestinationAsker* asker)
    : opt_(std::move(options)), asker_(asker) {
  if (!opt_.now_ns) opt_.now_ns = [] { return base::MonotonicNanos(); };
  if (!opt_.sleep_ms)
    opt_.sleep_ms = [](int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
}

std::optional<base::Error> MoveResolver::WhyNotCommitted(const StreamVerdict& stream) const {
  if (stream.committed) return std::nullopt;
  if (stream.dest_error) return stream.dest_error;
  if (stream.reader_error) return stream.reader_error;
  return base::Error(base::Code::kDeadlineExceeded,
                     "no answer from the destination " + opt_.peer + " within " +
                         std::to_string(opt_.commit_timeout_ms / 1000) + " s");
}

Resolution MoveResolver::Aborted(const base::Error& cause, const std::string& how) const {
  return {MoveOutcome::kAborted,
          base::Error(cause.code(), "the destination aborted after receiving the state (" + how +
                                        "): " + cause.message())};
}

Resolution MoveResolver::Settle(const base::Error& cause, bool error_frame) {
  if (asker_ == nullptr) {
    if (error_frame) return Aborted(cause, "its error frame");
    return {
        MoveOutcome::kInDoubt,
        base::Error(base::Code::kUnavailable,
                    kInDoubt + opt_.peer + " after sending the device state (" + cause.message() +
                        ") and no destination ferryd to ask; the vm stays paused here; an admin "
                        "must check the "
                        "destination before resuming or discarding it")};
  }
  const uint64_t until = opt_.now_ns() + uint64_t(opt_.retry_ms) * 1000000;
  std::string last = "no answer yet";
  for (;;) {
    auto state = asker_->AskMoveState(opt_.migration_id);
    if (state && *state == RemoteMoveState::kCommitted)
      return {MoveOutcome::kCommitted, std::nullopt};
    if (state && *state == RemoteMoveState::kAborted)
      return Aborted(cause, "its ferryd at " + asker_->Where() + " says so");
    last = state ? "state " + std::string(ToString(*state)) : state.error().message();
    if (opt_.now_ns() > until) break;
    opt_.sleep_ms(opt_.ask_interval_ms);
  }
  return {MoveOutcome::kInDoubt,
          base::Error(base::Code::kUnavailable,
                      kInDoubt + opt_.peer + " after sending the device state (" + cause.message() +
                          "), and its ferryd at " + asker_->Where() + " did not settle it within " +
                          std::to_string(opt_.retry_ms / 1000) + " s (last: " + last +
                          "); the vm stays paused here; an admin must check the destination")};
}

}  // namespace appliance
