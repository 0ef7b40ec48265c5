// An error the peer sent stays a value: its code, the shown "peer: " form,
// and the peer's own text apart, through any Wrap; so callers that name the
// peer themselves (CallPeer, the live move's stream 0 reader) ask the error
// instead of cutting the prefix off a string.
#include <gtest/gtest.h>

#include <vector>

#include "base/result.h"
#include "transport/hello.h"

namespace transport {
namespace {

TEST(PeerError, DecodedErrorKeepsThePeersOwnText) {
  const base::Error sent(base::Code::kResourceExhausted, "disk full at /srv/vms");
  const base::Error got = transport::DecodeErrorPayload(transport::EncodeErrorPayload(sent));
  EXPECT_EQ(got.code(), base::Code::kResourceExhausted);
  EXPECT_EQ(got.message(), "peer: disk full at /srv/vms");
  EXPECT_TRUE(got.from_peer());
  EXPECT_EQ(got.peer_message(), "disk full at /srv/vms");
}

TEST(PeerError, WrapKeepsTheOrigin) {
  const base::Error got =
      base::Error::FromPeer(base::Code::kAborted, "peer: relayed").Wrap("client stream");
  EXPECT_EQ(got.message(), "client stream: peer: peer: relayed");
  EXPECT_TRUE(got.from_peer());
  EXPECT_EQ(got.peer_message(), "peer: relayed");  // the peer's text, whatever it says
  EXPECT_EQ(got.code(), base::Code::kAborted);
}

TEST(PeerError, LocalErrorsAndMalformedFramesAreNotThePeers) {
  const base::Error local(base::Code::kInternal, "peer: looks like one");
  EXPECT_FALSE(local.from_peer());
  EXPECT_EQ(local.peer_message(), "");
  EXPECT_FALSE(local.Wrap("x").from_peer());
  const base::Error short_frame = transport::DecodeErrorPayload(std::vector<uint8_t>{1, 0});
  EXPECT_FALSE(short_frame.from_peer());
  EXPECT_EQ(short_frame.code(), base::Code::kDataLoss);
}

}  // namespace
}  // namespace transport
