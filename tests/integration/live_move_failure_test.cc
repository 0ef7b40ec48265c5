// Live moves that break (docs/live_move.md, "The VM runs on exactly one host
// whatever fails"): two ferryds on this machine, host A on 127.0.0.1 and
// host B on 127.0.0.2, each with its own storage root; a fault is injected
// in a chosen phase of `ferry move-vm` (held there with --bandwidth-limit and
// a guest that keeps dirtying, or with the FERRY_TEST_COMMIT_DELAY_MS hook of
// the incoming worker) and every test then checks:
//   - what `ferry move-vm` said (a clear error naming the cause, or success
//     where the design completes the move anyway),
//   - the VM is listed and its worker process alive on exactly one host,
//   - the guest's self-checks still pass there (memory guest: heartbeats go
//     on with errors=0; disk guest: no mismatch, and its disk verifies),
//   - nothing of a failed move is left at B (incoming/ empty, no file of the
//     move under the destination path).
// Faults: the incoming worker SIGKILLed in pre-copy and in switchover, B's
// ferryd SIGKILLed (and restarted) in pre-copy and in switchover, the TCP
// connections cut (ss -K), the destination file system full at pre-flight
// and during pre-copy, A's ferryd SIGKILLed (and restarted) in pre-copy.
#include "live_move_fixture.h"

namespace ferry_it {
namespace {

using namespace live_move_fixture;

// 1. The incoming worker dies in pre-copy: the source's streams break, the
// move fails, the VM never stopped running at A, and B's ferryd cleans up
// after its dead worker.
TEST_F(LiveMoveFailureTest, DestinationWorkerKilledDuringPrecopy) {
  StartFerryd();
  b_->Start();
  ASSERT_NO_FATAL_FAILURE(StartMemoryGuest("m1", 32, 5000));
  StartMove("m1", "2M");
  ASSERT_FALSE(WaitPhase("precopy", "kill the incoming worker").is_null());
  KillAndReapWait(IncomingWorkerB());

  ProcessResult r = WaitMove();
  ExpectFailed(r, {"closed", "reset"});
  EXPECT_NE(r.err.find("127.0.0.2:"), std::string::npos)
      << "the error does not name the destination: " << r.err;
  ExpectOnlyOnA("m1");
  ExpectBClean(DestB());
  ExpectMemoryGuestFineOnA("m1");
  nlohmann::json job = LiveJob();
  ASSERT_FALSE(job.is_null());
  EXPECT_EQ(job["phase"], "failed");
}

// 2. The incoming worker dies in its commit window (the VM built, the commit
// marker not yet written): the source, paused with its state sent, asks B's
// ferryd, which makes sure the move cannot commit and answers "aborted"; the
// source resumes. The disk guest then verifies at A: nothing was lost by the
// paused-and-drained mirror.
TEST_F(LiveMoveFailureTest, DestinationWorkerKilledDuringSwitchover) {
  StartHostsWithCommitDelay();
  std::string disk = StartDiskGuest("d1", 100);
  ASSERT_FALSE(HasFailure());
  StartMove("d1", "4M");
  nlohmann::json job = WaitPhase("resolving",
                                 "kill the incoming worker before its commit marker "
                                 "(needs FERRY_TEST_COMMIT_DELAY_MS in the incoming worker)");
  ASSERT_FALSE(job.is_null());
  const std::string marker = WaitCommitWindow(job);
  ASSERT_FALSE(HasFailure());
  KillAndReapWait(IncomingWorkerB());
  EXPECT_FALSE(Exists(marker)) << marker;

  ProcessResult r = WaitMove();
  ExpectFailed(r, {"aborted"});
  ExpectOnlyOnA("d1");
  ExpectBClean(DestB());
  job = LiveJob();
  ASSERT_FALSE(job.is_null());
  EXPECT_EQ(job["phase"], "failed");
  ExpectDiskGuestFineOnA("d1", disk);
}

// 3. B's ferryd dies in pre-copy and comes back. The data plane does not need
// it: the incoming worker (its own session) carries on, commits, and the
// restarted ferryd finds it in incoming/ and adopts the VM. So the move
// completes and the VM runs at B only.
TEST_F(LiveMoveFailureTest, DestinationFerrydRestartedDuringPrecopy) {
  StartFerryd();
  b_->Start();
  ASSERT_NO_FATAL_FAILURE(StartMemoryGuest("m1", 16, 200));
  StartMove("m1", "4M");
  ASSERT_FALSE(WaitPhase("precopy", "kill B's ferryd").is_null());
  KillB();
  EXPECT_NE(IncomingWorkerB(), 0) << "the incoming worker died with its ferryd";
  RestartB();
  ExpectMovedToB("m1");
}

// 4. B's ferryd dies in the commit window: the incoming worker commits
// without it and the source, told "committed" on its stream, shuts down
// ("moved"); the restarted ferryd adopts the committed VM.
TEST_F(LiveMoveFailureTest, DestinationFerrydKilledDuringSwitchover) {
  StartHostsWithCommitDelay();
  ASSERT_NO_FATAL_FAILURE(StartMemoryGuest("m1", 16, 200));
  StartMove("m1", "8M");
  nlohmann::json job = WaitPhase("resolving",
                                 "kill B's ferryd before the commit marker "
                                 "(needs FERRY_TEST_COMMIT_DELAY_MS in the incoming worker)");
  ASSERT_FALSE(job.is_null());
  WaitCommitWindow(job);
  ASSERT_FALSE(HasFailure());
  KillB();
  RestartB();
  ExpectMovedToB("m1");
}

// 5. Every data connection is cut (the kernel destroys the source's sockets
// to B's data port and resets B's ends): the move fails at once, the VM stays
// at A, and B removes what it had received.
TEST_F(LiveMoveFailureTest, ConnectionsCutDuringPrecopy) {
  StartFerryd();
  b_->Start();
  std::string disk = StartDiskGuest("d1", 500);
  ASSERT_FALSE(HasFailure());
  StartMove("d1", "1M");
  ASSERT_FALSE(WaitPhase("precopy", "cut the connections").is_null());
  // The incoming worker's data port, from A's log of the job.
  const std::string log = ReadAll(dir() + "/ferryd.log");
  const std::string key = ", data 127.0.0.2:";
  size_t at = log.rfind(key);
  ASSERT_NE(at, std::string::npos) << "no data address in A's log:\n" << log;
  const std::string port = std::to_string(std::atoi(log.c_str() + at + key.size()));
  ProcessResult ss = RunProcess({"/usr/bin/ss", "-K", "dst", "127.0.0.2:" + port}, {}, 30000);
  if (ss.exit_code != 0 || ss.err.find("not supported") != std::string::npos ||
      ss.out.find(":" + port) == std::string::npos) {
    KillFerryd();  // ends the CLI's wait
    move_.wait();
    GTEST_SKIP() << "ss -K cannot destroy sockets here (exit " << ss.exit_code << "): " << ss.out
                 << ss.err;
  }
  Note("ss -K destroyed:\n" + ss.out);

  ProcessResult r = WaitMove();
  ExpectFailed(r, {"connection abort", "reset", "closed"});
  EXPECT_NE(r.err.find("stream"), std::string::npos)
      << "the error does not name the stream: " << r.err;
  ExpectOnlyOnA("d1");
  ExpectBClean(DestB());
  ExpectDiskGuestFineOnA("d1", disk);
}

// 6. The destination file system is full: (a) too small for the disk, the
// move is refused at pre-flight naming the space needed and free; (b) big
// enough at pre-flight but filled up during pre-copy, the incoming worker
// hits ENOSPC writing the disk and the move fails naming the file.
TEST_F(LiveMoveFailureTest, DestinationDiskFull) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  StartFerryd();
  b_->Start();
  std::string disk = StartDiskGuest("d1", 500);
  ASSERT_FALSE(HasFailure());

  // (a) 8 MiB free for a 16 MiB disk.
  const std::string small = MountTmpfs("b-small", 8);
  ASSERT_FALSE(HasFailure());
  ProcessResult r = Ferry({"move-vm", "d1", HostB(), "--include-storage",
                           "--destination-storage-path", small, "--streams", "2"},
                          60000);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("not enough disk space at " + small), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("needs 16.0 MiB"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("8.0 MiB free"), std::string::npos) << r.err;
  Note("ferry move-vm said: " + r.err.substr(0, r.err.find_last_not_of('\n') + 1));
  EXPECT_EQ(State("d1"), "running");
  EXPECT_FALSE(ListedOnB("d1"));
  ExpectBClean(small);

  // (b) 24 MiB at pre-flight; filled once pre-copy runs (the mirror is still
  // copying: the guest writes 2 MB/s, the link carries 1 MiB/s).
  const std::string medium = MountTmpfs("b-medium", 24);
  ASSERT_FALSE(HasFailure());
  StartMove("d1", "1M", medium);
  ASSERT_FALSE(WaitPhase("precopy", "fill the destination").is_null());
  const std::string filler = medium + "/filler";
  {
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << std::strerror(errno);
    struct statvfs vfs {};
    ASSERT_EQ(::statvfs(medium.c_str(), &vfs), 0);
    off_t size = off_t(vfs.f_bavail * vfs.f_frsize);
    // The incoming worker keeps allocating meanwhile: take what is left.
    while (size > 0 && ::posix_fallocate(fd, 0, size) != 0) size -= 4096;
    ::close(fd);
    EXPECT_GT(size, 0) << "could not fill " << medium;
  }

  r = WaitMove();
  ExpectFailed(r, {"No space left on device"});
  EXPECT_NE(r.err.find(medium + "/d1.img"), std::string::npos)
      << "the error does not name the file: " << r.err;
  ExpectOnlyOnA("d1");
  ExpectBClean(medium, filler);
  ExpectDiskGuestFineOnA("d1", disk);
}

// 7. A's ferryd dies in pre-copy and stays down past the worker's lease
// (3 s here): nobody polls the source worker, it aborts the move (the VM
// never stopped) and tells the incoming worker, whose ferryd cleans up. The
// restarted ferryd takes the job up, learns the outcome from the worker and
// lists the job as failed with the worker's reason. (Restarted within the
// lease, the move goes on: live_move_ownership_test.cc.)
TEST_F(LiveMoveFailureTest, SourceFerrydRestartedDuringPrecopy) {
  const std::vector<std::string> env = {"FERRY_LIVE_MOVE_LEASE_MS=3000"};
  StartFerryd(env);
  b_->Start();
  ASSERT_NO_FATAL_FAILURE(StartMemoryGuest("m1", 16, 5000));
  StartMove("m1", "4M");
  nlohmann::json job = WaitPhase("precopy", "kill A's ferryd");
  ASSERT_FALSE(job.is_null());
  const std::string id = job["id"].get<std::string>();
  Note("SIGKILL to A's ferryd");
  KillFerryd();
  ProcessResult r = WaitMove();  // its ferryd is gone
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_FALSE(r.err.empty());
  Note("ferry move-vm said: " + r.err.substr(0, r.err.find_last_not_of('\n') + 1));
  // The worker gives up after its lease; B's incoming worker gets the Abort.
  WaitFor("the incoming worker at B to end", 60000,
          [&] { return Workers(b_->storage() + "/").empty(); });
  StartFerryd(env);
  Note("A's ferryd restarted");
  WaitFor("the job to end at A", 30000, [&] {
    nlohmann::json j = LiveJob();
    return !j.is_null() && j.value("phase", "") == "failed";
  });
  ExpectOnlyOnA("m1");
  ExpectBClean(DestB());
  ExpectMemoryGuestFineOnA("m1");
  job = LiveJob();
  ASSERT_FALSE(job.is_null());
  EXPECT_EQ(job["id"], id);
  EXPECT_EQ(job["phase"], "failed");
  ASSERT_TRUE(job["error"].is_object()) << job.dump();
  EXPECT_NE(job["error"].value("message", "").find("ferryd stopped polling"), std::string::npos)
      << job.dump();
  // The worker's reason reached B (its Abort frame), not just a dead stream.
  const std::string worker_log = ReadAll(VmDirA("m1") + "/worker.log");
  EXPECT_NE(worker_log.find("ferryd stopped polling"), std::string::npos) << worker_log;
  EXPECT_NE(b_->Log().find("the source aborted the move: ferryd stopped polling"),
            std::string::npos)
      << b_->Log();
}

}  // namespace
}  // namespace ferry_it
