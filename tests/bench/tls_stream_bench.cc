// FrameStream throughput over loopback TCP, plain and over TLS 1.3, measured
// in the same run and interleaved (plain, TLS, plain, TLS, ...) so both see
// the same machine load: 1 GiB of 1 MiB frames per run, one sender thread and
// the receiving main thread. Prints each run, the medians, their ratio and
// the negotiated cipher suite.
#include <stdlib.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "transport/frame_stream.h"
#include "transport/tcp.h"
#include "transport/tls.h"

namespace {

using bench::Die;
using bench::Must;
using namespace transport;

constexpr size_t kFrameBytes = 1 << 20;
constexpr size_t kFrames = 1024;  // 1 GiB
constexpr int kRepetitions = 3;
constexpr int kTimeoutMs = 60000;

struct Pair {
  std::unique_ptr<FrameStream> sender, receiver;
  std::string cipher;
};

Pair Connect(const TlsContext* client_ctx, const TlsContext* server_ctx) {
  TcpListener listener = Must(TcpListener::Bind("127.0.0.1", 0), "listen");
  base::Fd client = Must(TcpConnect("127.0.0.1", listener.port(), "", kTimeoutMs), "connect");
  base::Fd server = Must(listener.Accept(-1, kTimeoutMs), "accept").first;
  Pair p;
  if (client_ctx == nullptr) {
    p.sender = std::make_unique<FrameStream>(std::move(client), "plain sender");
    p.receiver = std::make_unique<FrameStream>(std::move(server), "plain receiver");
    return p;
  }
  std::unique_ptr<TlsSession> accepted;
  std::thread t(
      [&] { accepted = Must(TlsAccept(*server_ctx, server.get(), "", kTimeoutMs), "TLS accept"); });
  std::unique_ptr<TlsSession> connected =
      Must(TlsConnect(*client_ctx, client.get(), "", kTimeoutMs), "TLS connect");
  t.join();
  p.cipher = connected->peer().cipher;
  p.sender = std::make_unique<FrameStream>(std::move(client), "TLS sender", std::move(connected));
  p.receiver =
      std::make_unique<FrameStream>(std::move(server), "TLS receiver", std::move(accepted));
  return p;
}

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

struct Figures {
  double mb_per_s = 0;     // 10^6 bytes of payload per second, first Send to last Receive
  double cpu_per_gib = 0;  // CPU seconds (both threads, user + kernel) per GiB
};

Figures Run(Pair& p, const std::vector<uint8_t>& payload) {
  double cpu_start = CpuSeconds();
  auto start = std::chrono::steady_clock::now();
  std::thread sender([&] {
    for (size_t i = 0; i < kFrames; ++i)
      Must(p.sender->Send(0x10, payload, {}, nullptr, -1, kTimeoutMs), "send");
  });
  for (size_t i = 0; i < kFrames; ++i) {
    Frame f = Must(p.receiver->Receive(kMaxFramePayload, -1, kTimeoutMs), "receive");
    if (f.payload.size() != kFrameBytes) Die("short frame");
  }
  sender.join();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  Figures f;
  f.mb_per_s = double(kFrames * kFrameBytes) / s / 1e6;
  f.cpu_per_gib = CpuSeconds() - cpu_start;  // exactly 1 GiB moved
  return f;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main() {
  char dir_template[] = "/tmp/ferry-tls-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) Die("mkdtemp failed");
  std::string dir = dir_template;
  std::vector<std::string> files = {dir + "/a.pem", dir + "/a.key", dir + "/b.pem", dir + "/b.key"};
  Must(GenerateHostIdentity(files[0], files[1], "bench-a"), "identity a");
  Must(GenerateHostIdentity(files[2], files[3], "bench-b"), "identity b");
  TlsSettings sa{files[0], files[1], "", {Must(CertificateFingerprint(files[2]), "fp b")}};
  TlsSettings sb{files[2], files[3], "", {Must(CertificateFingerprint(files[0]), "fp a")}};
  auto a = Must(TlsContext::Create(sa), "context a");
  auto b = Must(TlsContext::Create(sb), "context b");
  for (const std::string& f : files) ::unlink(f.c_str());
  ::rmdir(dir.c_str());

  std::vector<uint8_t> payload(kFrameBytes);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = uint8_t(i * 2654435761u >> 24);
  std::vector<double> plain, tls, plain_cpu, tls_cpu;
  std::string cipher;
  for (int r = 0; r < kRepetitions; ++r) {
    Pair p = Connect(nullptr, nullptr);
    Figures fp = Run(p, payload);
    Pair t = Connect(a.get(), b.get());
    cipher = t.cipher;
    Figures ft = Run(t, payload);
    plain.push_back(fp.mb_per_s);
    tls.push_back(ft.mb_per_s);
    plain_cpu.push_back(fp.cpu_per_gib);
    tls_cpu.push_back(ft.cpu_per_gib);
    std::printf("run %d: plain %.0f MB/s (%.2f CPU s/GiB), TLS %.0f MB/s (%.2f CPU s/GiB)\n", r + 1,
                fp.mb_per_s, fp.cpu_per_gib, ft.mb_per_s, ft.cpu_per_gib);
  }
  double mp = Median(plain), mt = Median(tls);
  std::printf("FrameStream 1 GiB of 1 MiB frames over loopback TCP (median of %d, %u cores)\n",
              kRepetitions, std::thread::hardware_concurrency());
  std::printf("  plain: %.0f MB/s, %.2f CPU s/GiB\n", mp, Median(plain_cpu));
  std::printf("  TLS:   %.0f MB/s, %.2f CPU s/GiB (%s)\n", mt, Median(tls_cpu), cipher.c_str());
  std::printf("  ratio TLS/plain: %.2f\n", mt / mp);
  return 0;
}
