#include "http_tls.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cctype>

namespace appliance {
namespace {

// Where the SSL_CTX keeps its TlsCheck for the verify callback (one index
// for the process, made on first use).
int CheckIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// Called by OpenSSL for each certificate of the chain, leaf (depth 0) last.
int VerifyCertificate(int preverified, X509_STORE_CTX* store) {
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* check =
      ssl != nullptr
          ? static_cast<TlsCheck*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), CheckIndex()))
          : nullptr;
  if (check == nullptr) return 0;  // never accept a certificate we could not look at
  const bool pinned = check->pinned.has_value();
  if (X509_STORE_CTX_get_error_depth(store) != 0) {
    // With a pin the issuers do not matter (a self-signed host certificate
    // has none we know); the leaf alone decides below.
    if (!pinned) return preverified;
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
  }
  X509* leaf = X509_STORE_CTX_get_current_cert(store);
  Sha256 digest{};
  unsigned int length = 0;
  if (leaf == nullptr || X509_digest(leaf, EVP_sha256(), digest.data(), &length) != 1 ||
      length != digest.size())
    return 0;
  check->seen = digest;
  if (!pinned) return preverified;
  if (digest != *check->pinned) {
    check->pin_mismatch = true;
    return 0;
  }
  // Accepted by its pin: clear the chain error (self-signed, unknown
  // issuer), which curl would otherwise report after the handshake.
  X509_STORE_CTX_set_error(store, X509_V_OK);
  return 1;
}

CURLcode SetUpSslContext(CURL* /*curl*/, void* ssl_ctx, void* user) {
  auto* ctx = static_cast<SSL_CTX*>(ssl_ctx);
  if (SSL_CTX_set_ex_data(ctx, CheckIndex(), user) != 1) return CURLE_SSL_CERTPROBLEM;
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, &VerifyCertificate);
  return CURLE_OK;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = char(std::tolower(static_cast<unsigned char>(c)));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string FormatCertificateFingerprint(const Sha256& sha256) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out = "SHA256:";
  for (size_t i = 0; i < sha256.size(); ++i) {
    if (i != 0) out += ':';
    out += kHex[sha256[i] >> 4];
    out += kHex[sha256[i] & 15];
  }
  return out;
}

base::Result<Sha256> ParseCertificateFingerprint(std::string_view text) {
  std::string_view hex = text;
  if (hex.size() >= 7 && (hex.substr(0, 7) == "SHA256:" || hex.substr(0, 7) == "sha256:"))
    hex.remove_prefix(7);
  Sha256 out{};
  size_t n = 0;
  int high = -1;
  for (char c : hex) {
    if (c == ':' && high < 0) continue;
    const int v = HexValue(c);
    if (v < 0 || (high < 0 && n == out.size())) {
      n = out.size() + 1;  // not a fingerprint
      break;
    }
    if (high < 0) {
      high = v;
    } else {
      out[n++] = uint8_t(high << 4 | v);
      high = -1;
    }
  }
  if (n != out.size() || high >= 0)
    return base::Error(base::Code::kInvalidArgument,
                       "\"" + std::string(text) +
                           "\" is not a SHA-256 certificate fingerprint (SHA256: and 32 hex "
                           "bytes, as `ferry host certificate show` prints it)");
  return out;
}

void ConfigureTls(CURL* curl, TlsCheck& check) {
  curl_easy_setopt(curl, CURLOPT_SSLVERSION, long(CURL_SSLVERSION_TLSv1_2));
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  if (check.pinned) {
    // The pin names the certificate itself, so the name it was issued for
    // does not matter (hosts are often reached by address).
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  } else {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(curl, CURLOPT_CAINFO, check.ca_file.c_str());
    // Only --ca: not the system's store of public CAs as well.
    curl_easy_setopt(curl, CURLOPT_CAPATH, nullptr);
  }
  curl_easy_setopt(curl, CURLOPT_SSL_CTX_FUNCTION, &SetUpSslContext);
  curl_easy_setopt(curl, CURLOPT_SSL_CTX_DATA, &check);
}

}  // namespace appliance
