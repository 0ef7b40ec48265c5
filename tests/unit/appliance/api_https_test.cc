// ApiServer's remote listener (api_listen) with a fake ApiAuthenticator
// that takes one user and password (HTTP Basic): HTTPS with a test-CA
// certificate, requests from the CLI's HttpClient (CA or fingerprint pin)
// and from plain libcurl (to see the raw 401/403 and a plain-HTTP client).
// No KVM: VmService runs without workers.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "base/mutex.h"
#include "cli/http_client.h"
#include "daemon/api_handler.h"
#include "daemon/api_server.h"
#include "support/temp_dir.h"
#include "support/test_tls.h"

namespace appliance {
namespace {

constexpr const char* kUser = "admin";
constexpr const char* kPassword = "correct horse";

std::string BasicValue(const std::string& user, const std::string& password) {
  std::string pair = user + ":" + password;
  return "Basic " +
         base::Base64Encode(std::span(reinterpret_cast<const uint8_t*>(pair.data()), pair.size()));
}

// Takes Basic admin:"correct horse"; no Authorization: refused (the server
// answers 401 with Challenge()); anything else: refused (403). Local socket
// requests are root's. Records what the last remote request came with.
class FakeAuthenticator : public ApiAuthenticator {
 public:
  base::Result<ApiCaller> Authenticate(const std::map<std::string, std::string>& headers,
                                       const ApiTransport& transport) const override {
    auto it = headers.find(kAuthorizationHeader);
    {
      base::MutexLock lock(mu_);
      if (transport.remote) {
        ++remote_calls_;
        binding_ = transport.channel_binding;
      }
    }
    if (!transport.remote) return ApiCaller{};
    if (it == headers.end())
      return base::Error(base::Code::kPermissionDenied, "no credentials: give a password");
    if (it->second != BasicValue(kUser, kPassword))
      return base::Error(base::Code::kPermissionDenied, "wrong user or password");
    return ApiCaller{.remote = true, .admin = kUser, .credentials = nullptr};
  }
  std::string Challenge() const override { return "Basic realm=\"ferry\""; }

  std::vector<uint8_t> binding() const {
    base::MutexLock lock(mu_);
    return binding_;
  }
  int remote_calls() const {
    base::MutexLock lock(mu_);
    return remote_calls_;
  }

 private:
  mutable base::Mutex mu_;
  mutable std::vector<uint8_t> binding_ GUARDED_BY(mu_);
  mutable int remote_calls_ GUARDED_BY(mu_) = 0;
};

// Kerberos mode's shape: asks for Negotiate, takes nothing (no KDC here).
class NegotiateAuthenticator : public ApiAuthenticator {
 public:
  base::Result<ApiCaller> Authenticate(const std::map<std::string, std::string>& /*headers*/,
                                       const ApiTransport& transport) const override {
    if (!transport.remote) return ApiCaller{};
    return base::Error(base::Code::kPermissionDenied, "no Kerberos token");
  }
  std::string Challenge() const override { return "Negotiate"; }
};

// SHA-256 of the certificate in DER, by the openssl command line (not the
// code under test).
std::vector<uint8_t> CertificateSha256(const std::string& pem) {
  std::string command = "/usr/bin/openssl x509 -in '" + pem +
                        "' -outform DER | /usr/bin/openssl dgst -sha256 -binary";
  FILE* p = ::popen(command.c_str(), "r");
  std::vector<uint8_t> out;
  if (p == nullptr) return out;
  int c = 0;
  while ((c = std::fgetc(p)) != EOF) out.push_back(uint8_t(c));
  ::pclose(p);
  return out;
}

std::string Fingerprint(const std::vector<uint8_t>& sha256) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "SHA256:";
  for (size_t i = 0; i < sha256.size(); ++i) {
    if (i != 0) out += ':';
    out += kHex[sha256[i] >> 4];
    out += kHex[sha256[i] & 15];
  }
  return out;
}

struct RawAnswer {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string www_authenticate;
  std::string body;
};

size_t AppendBody(char* data, size_t size, size_t count, void* user) {
  static_cast<RawAnswer*>(user)->body.append(data, size * count);
  return size * count;
}
size_t KeepChallenge(char* data, size_t size, size_t count, void* user) {
  std::string line(data, size * count);
  const std::string name = "WWW-Authenticate: ";
  if (line.compare(0, name.size(), name) == 0) {
    line = line.substr(name.size());
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
    static_cast<RawAnswer*>(user)->www_authenticate = line;
  }
  return size * count;
}

// A GET by plain libcurl: url "https://localhost:PORT/..." verified with ca,
// or "http://..." for a client that does not speak TLS.
RawAnswer RawGet(const std::string& url, const std::string& ca, const std::string& authorization) {
  RawAnswer answer;
  CURL* curl = curl_easy_init();
  curl_slist* headers = nullptr;
  if (!authorization.empty())
    headers = curl_slist_append(headers, ("Authorization: " + authorization).c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CAINFO, ca.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &KeepChallenge);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  answer.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return answer;
}

class ApiHttpsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  void SetUp() override {
    // CN and DNS name "localhost": a client verifying by CA checks the name.
    tls_ = ferry_test::IssueTestCertificate(dir_.path(), "localhost");
    ServiceOptions options;
    options.host.storage_root = dir_ / "root";
    options.worker_binary = "/bin/false";  // no VM is started here
    options.guest_dir = dir_.path();
    auto service = VmService::Open(options);
    ASSERT_TRUE(service.has_value()) << service.error().ToString();
    service_ = std::move(*service);
    handler_ = std::make_unique<ApiHandler>(*service_);
    ASSERT_NO_FATAL_FAILURE(StartServer(authenticator_, ""));
  }
  void StartServer(const ApiAuthenticator& authenticator, const std::string& service_principal) {
    server_.reset();
    ApiServer::Options api;
    api.authenticator = &authenticator;
    api.https =
        ApiServer::HttpsOptions{.listen = {.host = "127.0.0.1", .port = 0, .text = "127.0.0.1:0"},
                                .certificate_file = tls_.certificate,
                                .key_file = tls_.key,
                                .service_principal = service_principal};
    auto server = ApiServer::Start(dir_ / "run/api.sock", *handler_, api);
    ASSERT_TRUE(server.has_value()) << server.error().ToString();
    server_ = std::move(*server);
    ASSERT_NE(server_->https_port(), 0);
  }
  void TearDown() override {
    server_.reset();
    handler_.reset();
    service_.reset();
  }

  std::string Url(const std::string& scheme, const std::string& path) const {
    return scheme + "://localhost:" + std::to_string(server_->https_port()) + path;
  }
  RemoteTarget ByCa(const std::string& user, const std::string& password) const {
    RemoteTarget target;
    target.host = "localhost";
    target.port = server_->https_port();
    target.ca_file = tls_.ca;
    target.user = user;
    target.password = auth::Secret(password);
    return target;
  }
  RemoteTarget ByFingerprint(const std::string& fingerprint) const {
    RemoteTarget target;
    target.host = "127.0.0.1";
    target.port = server_->https_port();
    target.fingerprint = fingerprint;
    target.user = kUser;
    target.password = auth::Secret(kPassword);
    return target;
  }
  base::Result<HttpResult> GetHost(RemoteTarget target) {
    ASSIGN_OR_RETURN(HttpClient client, HttpClient::Remote(std::move(target)));
    return client.Request("GET", "/v1/host", nullptr, 10);
  }

  ferry_test::TempDir dir_;
  ferry_test::TestTlsFiles tls_;
  FakeAuthenticator authenticator_;
  std::unique_ptr<VmService> service_;
  std::unique_ptr<ApiHandler> handler_;
  std::unique_ptr<ApiServer> server_;
};

TEST_F(ApiHttpsTest, AcceptedCallerIsServedAndBoundToTheServerCertificate) {
  auto reply = GetHost(ByCa(kUser, kPassword));
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 200) << reply->body;
  EXPECT_NE(reply->body.find("\"version\""), std::string::npos) << reply->body;
  EXPECT_GE(authenticator_.remote_calls(), 1);
  const std::vector<uint8_t> expected = CertificateSha256(tls_.certificate);
  ASSERT_EQ(expected.size(), 32u);
  EXPECT_EQ(authenticator_.binding(), expected);
  EXPECT_EQ(server_->https_channel_binding(), expected);
}

TEST_F(ApiHttpsTest, RequestWithoutAuthorizationGets401WithTheChallenge) {
  RawAnswer answer = RawGet(Url("https", "/v1/host"), tls_.ca, "");
  ASSERT_EQ(answer.code, CURLE_OK) << curl_easy_strerror(answer.code);
  EXPECT_EQ(answer.status, 401) << answer.body;
  EXPECT_EQ(answer.www_authenticate, "Basic realm=\"ferry\"");
  EXPECT_NE(answer.body.find("no credentials: give a password"), std::string::npos) << answer.body;
  // The CLI's client says what to give instead of printing a bare 401.
  auto reply = GetHost(ByCa("", ""));
  ASSERT_FALSE(reply.has_value());
  EXPECT_EQ(reply.error().code(), base::Code::kPermissionDenied);
  EXPECT_NE(reply.error().message().find("--user"), std::string::npos) << reply.error().message();
}

TEST_F(ApiHttpsTest, RefusedCredentialsGet403) {
  RawAnswer answer = RawGet(Url("https", "/v1/host"), tls_.ca, BasicValue(kUser, "wrong"));
  ASSERT_EQ(answer.code, CURLE_OK) << curl_easy_strerror(answer.code);
  EXPECT_EQ(answer.status, 403) << answer.body;
  EXPECT_TRUE(answer.www_authenticate.empty());
  EXPECT_NE(answer.body.find("wrong user or password"), std::string::npos) << answer.body;
  auto reply = GetHost(ByCa(kUser, "wrong"));
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 403) << reply->body;
}

TEST_F(ApiHttpsTest, PlainHttpClientIsRefusedAndTheListenerKeepsServing) {
  RawAnswer plain = RawGet(Url("http", "/v1/host"), "", BasicValue(kUser, kPassword));
  EXPECT_NE(plain.code, CURLE_OK) << "a plain-HTTP request was answered " << plain.status;
  EXPECT_EQ(plain.status, 0);
  EXPECT_EQ(authenticator_.remote_calls(), 0);  // nothing reached the API
  auto reply = GetHost(ByCa(kUser, kPassword));
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 200);
}

TEST_F(ApiHttpsTest, PinnedFingerprintNeedsNoCaAndNoHostName) {
  auto reply = GetHost(ByFingerprint(Fingerprint(CertificateSha256(tls_.certificate))));
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 200) << reply->body;
}

TEST_F(ApiHttpsTest, WrongFingerprintRefusesTheServerAndNamesTheOneItSaw) {
  ferry_test::TestTlsFiles other =
      ferry_test::IssueTestCertificate(dir_ / "other", "other.ferry.test");
  const std::string wrong = Fingerprint(CertificateSha256(other.certificate));
  auto reply = GetHost(ByFingerprint(wrong));
  ASSERT_FALSE(reply.has_value()) << "served despite a wrong pin: " << reply->status;
  EXPECT_EQ(reply.error().code(), base::Code::kPermissionDenied);
  const std::string seen = Fingerprint(CertificateSha256(tls_.certificate));
  EXPECT_NE(reply.error().message().find(seen), std::string::npos) << reply.error().message();
  EXPECT_NE(reply.error().message().find(wrong), std::string::npos) << reply.error().message();
  EXPECT_EQ(authenticator_.remote_calls(), 0);  // the password never left
}

TEST_F(ApiHttpsTest, CaThatDidNotIssueTheCertificateIsRefused) {
  // A self-signed certificate as "CA": it issued nothing the server shows.
  ferry_test::TestTlsFiles other =
      ferry_test::IssueTestCertificate(dir_ / "other", "other.ferry.test");
  RemoteTarget target = ByCa(kUser, kPassword);
  target.ca_file = other.certificate;
  auto reply = GetHost(std::move(target));
  ASSERT_FALSE(reply.has_value()) << "served despite an unknown issuer: " << reply->status;
  EXPECT_EQ(reply.error().code(), base::Code::kPermissionDenied) << reply.error().message();
  EXPECT_EQ(authenticator_.remote_calls(), 0);
}

TEST_F(ApiHttpsTest, ClientWithNeitherCaNorFingerprintIsRefusedBeforeConnecting) {
  RemoteTarget target = ByCa(kUser, kPassword);
  target.ca_file.clear();
  auto client = HttpClient::Remote(std::move(target));
  ASSERT_FALSE(client.has_value());
  EXPECT_EQ(client.error().code(), base::Code::kInvalidArgument);
}

// Before authenticating, a Kerberos client learns from the 401 which
// service principal to get a ticket for.
TEST_F(ApiHttpsTest, NegotiateChallengeNamesTheServicePrincipal) {
  NegotiateAuthenticator negotiate;
  const std::string principal = "ferry-migration/localhost@FERRY.TEST";
  ASSERT_NO_FATAL_FAILURE(StartServer(negotiate, principal));
  RawAnswer answer = RawGet(Url("https", "/v1/vms"), tls_.ca, "");
  ASSERT_EQ(answer.code, CURLE_OK) << curl_easy_strerror(answer.code);
  EXPECT_EQ(answer.status, 401);
  EXPECT_EQ(answer.www_authenticate, "Negotiate");
  auto body = nlohmann::json::parse(answer.body, nullptr, false);
  ASSERT_TRUE(body.is_object()) << answer.body;
  EXPECT_EQ(body["kerberos"].value("service_principal", ""), principal) << answer.body;
  EXPECT_EQ(body["error"].value("code", ""), "unauthenticated") << answer.body;
  // The CLI's client answers the challenge with a token, which it cannot
  // make here (no tickets): an error, never the bare 401.
  ::setenv("KRB5CCNAME", (dir_ / "no-such-ccache").c_str(), 1);
  auto reply = GetHost(ByCa("", ""));
  EXPECT_FALSE(reply.has_value()) << "answered " << reply->status << ": " << reply->body;
  server_.reset();  // before `negotiate` goes away
}

TEST_F(ApiHttpsTest, LocalSocketStaysRoots) {
  HttpClient local(dir_ / "run/api.sock");
  auto reply = local.Request("GET", "/v1/host", nullptr, 10);
  ASSERT_TRUE(reply.has_value()) << reply.error().ToString();
  EXPECT_EQ(reply->status, 200) << reply->body;
  EXPECT_EQ(authenticator_.remote_calls(), 0);
}

}  // namespace
}  // namespace appliance
