// MoveResolver against a fake destination ferryd: what stream 0 brought
// back, then each answer the ferryd can give (committed, aborted, unknown,
// still running, no answer) until the retry time runs out. The clock is
// fake and advances only by the resolver's waits, so nothing sleeps.
#include "move_resolver.h"

#include <gtest/gtest.h>

#include <deque>
#include <functional>

namespace appliance {
namespace {

constexpr const char* kPeer = "127.0.0.2:7001";
constexpr const char* kFerryd = "127.0.0.2:7430";

class FakeDestination : public DestinationAsker {
 public:
  // Answers in order; the last one repeats.
  explicit FakeDestination(std::deque<base::Result<RemoteMoveState>> answers)
      : answers_(std::move(answers)) {}

  base::Result<RemoteMoveState> AskMoveState(const std::string& migration_id) override {
    asked_ids.push_back(migration_id);
    if (on_ask) on_ask();
    base::Result<RemoteMoveState> a = answers_.front();
    if (answers_.size() > 1) answers_.pop_front();
    return a;
  }
  std::string Where() const override { return kFerryd; }

  std::vector<std::string> asked_ids;
  std::function<void()> on_ask;  // e.g. the time a question takes

 private:
  std::deque<base::Result<RemoteMoveState>> answers_;
};

base::Error StillRunning() {
  return base::Error(
      base::Code::kUnavailable,
      std::string(kFerryd) + " says migration m1 is still running there (no verdict yet)");
}
base::Error Refused() {
  return base::Error(base::Code::kUnavailable, "connect 127.0.0.2:7430: Connection refused");
}

class MoveResolverTest : public ::testing::Test {
 protected:
  MoveResolver Make(DestinationAsker* asker, int retry_ms = 3000) {
    MoveResolver::Options o;
    o.migration_id = "m1";
    o.peer = kPeer;
    o.commit_timeout_ms = 60000;
    o.retry_ms = retry_ms;
    o.ask_interval_ms = 1000;
    o.now_ns = [this] { return now_ns_; };
    o.sleep_ms = [this](int ms) {
      ++sleeps_;
      now_ns_ += uint64_t(ms) * 1000000;
    };
    return MoveResolver(std::move(o), asker);
  }

  uint64_t now_ns_ = 5000000000ull;
  int sleeps_ = 0;
  const base::Error lost_ =
      base::Error(base::Code::kUnavailable, "stream 0 to 127.0.0.2:7001: connection reset");
  const base::Error frame_ =
      base::Error(base::Code::kResourceExhausted, "destination 127.0.0.2:7001: disk full");
};

TEST_F(MoveResolverTest, CommittedOnStreamZeroNeedsNoCause) {
  MoveResolver r = Make(nullptr);
  StreamVerdict s;
  s.committed = true;
  s.reader_error = lost_;  // the stream may close after Committed
  EXPECT_FALSE(r.WhyNotCommitted(s));
}

TEST_F(MoveResolverTest, TheErrorFrameIsTheBetterCause) {
  MoveResolver r = Make(nullptr);
  StreamVerdict s;
  s.dest_error = frame_;
  s.reader_error = lost_;
  auto cause = r.WhyNotCommitted(s);
  ASSERT_TRUE(cause);
  EXPECT_EQ(cause->message(), frame_.message());
  s.dest_error.reset();
  cause = r.WhyNotCommitted(s);
  ASSERT_TRUE(cause);
  EXPECT_EQ(cause->message(), lost_.message());
}

TEST_F(MoveResolverTest, NoAnswerOnStreamZero) {
  auto cause = Make(nullptr).WhyNotCommitted(StreamVerdict{});
  ASSERT_TRUE(cause);
  EXPECT_EQ(cause->code(), base::Code::kDeadlineExceeded);
  EXPECT_EQ(cause->message(), "no answer from the destination 127.0.0.2:7001 within 60 s");
}

TEST_F(MoveResolverTest, WithoutAFerrydAnErrorFrameIsAnAbort) {
  const Resolution r = Make(nullptr).Settle(frame_, true);
  EXPECT_EQ(r.outcome, MoveOutcome::kAborted);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code(), base::Code::kResourceExhausted);
  EXPECT_EQ(r.error->message(),
            "the destination aborted after receiving the state (its error frame): destination "
            "127.0.0.2:7001: disk "
            "full");
}

TEST_F(MoveResolverTest, WithoutAFerrydALostStreamIsInDoubt) {
  const Resolution r = Make(nullptr).Settle(lost_, false);
  EXPECT_EQ(r.outcome, MoveOutcome::kInDoubt);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code(), base::Code::kUnavailable);
  EXPECT_EQ(r.error->message(),
            "move in doubt: lost the destination 127.0.0.2:7001 after sending the device state "
            "(stream 0 to "
            "127.0.0.2:7001: connection reset) and no destination ferryd to ask; the vm stays "
            "paused here; an admin "
            "must check the destination before resuming or discarding it");
  EXPECT_EQ(sleeps_, 0);
}

TEST_F(MoveResolverTest, FerrydSaysCommitted) {
  FakeDestination dest({RemoteMoveState::kCommitted});
  const Resolution r = Make(&dest).Settle(lost_, false);
  EXPECT_EQ(r.outcome, MoveOutcome::kCommitted);
  EXPECT_FALSE(r.error);
  EXPECT_EQ(dest.asked_ids, std::vector<std::string>{"m1"});
  EXPECT_EQ(sleeps_, 0);
}

TEST_F(MoveResolverTest, FerrydOverridesAnErrorFrame) {
  // With a ferryd to ask, its word decides, even after an error frame.
  FakeDestination dest({RemoteMoveState::kCommitted});
  EXPECT_EQ(Make(&dest).Settle(frame_, true).outcome, MoveOutcome::kCommitted);
}

TEST_F(MoveResolverTest, FerrydSaysAborted) {
  FakeDestination dest({RemoteMoveState::kAborted});
  const Resolution r = Make(&dest).Settle(lost_, false);
  EXPECT_EQ(r.outcome, MoveOutcome::kAborted);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code(), base::Code::kUnavailable);  // the cause's code
  EXPECT_EQ(r.error->message(),
            "the destination aborted after receiving the state (its ferryd at 127.0.0.2:7430 says "
            "so): stream 0 to "
            "127.0.0.2:7001: connection reset");
}

TEST_F(MoveResolverTest, RunningThenCommitted) {
  FakeDestination dest({StillRunning(), StillRunning(), RemoteMoveState::kCommitted});
  const Resolution r = Make(&dest).Settle(lost_, false);
  EXPECT_EQ(r.outcome, MoveOutcome::kCommitted);
  EXPECT_EQ(dest.asked_ids.size(), 3u);
  EXPECT_EQ(sleeps_, 2);
}

TEST_F(MoveResolverTest, UnreachableThenAborted) {
  FakeDestination dest({Refused(), RemoteMoveState::kAborted});
  EXPECT_EQ(Make(&dest).Settle(lost_, false).outcome, MoveOutcome::kAborted);
  EXPECT_EQ(dest.asked_ids.size(), 2u);
}

TEST_F(MoveResolverTest, UnknownIsAskedAgainUntilTheDeadline) {
  FakeDestination dest({RemoteMoveState::kUnknown});
  const Resolution r = Make(&dest, 3000).Settle(lost_, false);
  EXPECT_EQ(r.outcome, MoveOutcome::kInDoubt);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->code(), base::Code::kUnavailable);
  EXPECT_EQ(r.error->message(),
            "move in doubt: lost the destination 127.0.0.2:7001 after sending the device state "
            "(stream 0 to "
            "127.0.0.2:7001: connection reset), and its ferryd at 127.0.0.2:7430 did not settle it "
            "within 3 s (last: "
            "state unknown); the vm stays paused here; an admin must check the destination");
  // Asked at 0, 1, 2, 3 s (not yet past the deadline) and 4 s (past it).
  EXPECT_EQ(dest.asked_ids.size(), 5u);
  EXPECT_EQ(sleeps_, 4);
}

TEST_F(MoveResolverTest, NoAnswerUntilTheDeadlineNamesTheLastError) {
  FakeDestination dest({StillRunning(), Refused()});
  const Resolution r = Make(&dest, 2000).Settle(lost_, false);
  EXPECT_EQ(r.outcome, MoveOutcome::kInDoubt);
  ASSERT_TRUE(r.error);
  EXPECT_NE(r.error->message().find(
                "did not settle it within 2 s (last: connect 127.0.0.2:7430: Connection "
                "refused)"),
            std::string::npos)
      << r.error->message();
}

TEST_F(MoveResolverTest, AskedOnceEvenWithNoTimeToRetry) {
  FakeDestination dest({StillRunning()});
  dest.on_ask = [this] { now_ns_ += 5000000; };  // a question takes 5 ms
  const Resolution r = Make(&dest, 0).Settle(lost_, false);
  EXPECT_EQ(r.outcome, MoveOutcome::kInDoubt);
  EXPECT_EQ(dest.asked_ids.size(), 1u);
  EXPECT_EQ(sleeps_, 0);
  EXPECT_NE(r.error->message().find(
                "within 0 s (last: 127.0.0.2:7430 says migration m1 is still running there"),
            std::string::npos)
      << r.error->message();
}

}  // namespace
}  // namespace appliance
