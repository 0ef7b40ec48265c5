// The 16550 subset: transmit appends to the console file, the status
// registers say "ready", stored registers survive save/restore.
#include "serial.h"

#include <gtest/gtest.h>

#include "vm_fixture.h"

namespace vm {
namespace {

class SerialTest : public testing::VmTest {};

TEST_F(SerialTest, TransmitAppendsToTheConsole) {
  auto s = Serial::Open(Path("console"));
  ASSERT_TRUE(s) << s.error().ToString();
  for (char c : std::string("ok\n")) s->PortOut(0, static_cast<uint8_t>(c));
  EXPECT_EQ(*base::ReadFileToString(Path("console")), "ok\n");
  EXPECT_EQ(s->PortIn(5), 0x60);  // THR empty, transmitter empty
  EXPECT_EQ(s->PortIn(0), 0);     // no input
  EXPECT_EQ(s->PortIn(2), 0x01);  // no interrupt pending
  EXPECT_EQ(s->bytes_written(), 3u);
}

TEST_F(SerialTest, DivisorLatchAndScratchAreStoredAndRestored) {
  auto s = Serial::Open(Path("console"));
  ASSERT_TRUE(s);
  s->PortOut(3, 0x83);  // DLAB on, 8N1
  s->PortOut(0, 0x0c);  // DLL: 9600 baud, not a transmitted byte
  s->PortOut(1, 0x00);
  s->PortOut(3, 0x03);
  s->PortOut(7, 0x5a);
  s->PortOut(1, 0x01);  // IER
  EXPECT_EQ(*base::ReadFileToString(Path("console")), "");
  std::string blob = s->SaveState();

  auto t = Serial::Open("");
  ASSERT_TRUE(t);
  ASSERT_TRUE(t->RestoreState(blob));
  EXPECT_EQ(t->PortIn(7), 0x5a);
  EXPECT_EQ(t->PortIn(3), 0x03);
  EXPECT_EQ(t->PortIn(1), 0x01);
  t->PortOut(3, 0x83);
  EXPECT_EQ(t->PortIn(0), 0x0c);
  t->PortOut(3, 0x03);
  EXPECT_EQ(t->SaveState(), s->SaveState());
}

TEST_F(SerialTest, MalformedStateIsRejected) {
  auto s = Serial::Open("");
  ASSERT_TRUE(s);
  std::string blob = s->SaveState();
  for (size_t len = 0; len < blob.size(); ++len)
    EXPECT_EQ(s->RestoreState(blob.substr(0, len)).error().code(), base::Code::kDataLoss);
  EXPECT_FALSE(s->RestoreState(blob + "z"));
  blob[0] = 2;
  EXPECT_FALSE(s->RestoreState(blob));
}

}  // namespace
}  // namespace vm
