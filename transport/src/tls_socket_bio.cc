// The socket BIO under every TLS session: OpenSSL's own socket BIO uses
// read()/write(), which block on a blocking socket and raise SIGPIPE on a
// closed one. This one always passes MSG_DONTWAIT and MSG_NOSIGNAL, so the
// caller's socket mode does not matter, and it remembers the errno of a
// failure (to tell a reset from a clean EOF) and how much the peer sent.
#include <sys/socket.h>

#include <cerrno>

#include "tls_internal.h"

namespace transport {
namespace {

SocketBioState* State(BIO* bio) { return static_cast<SocketBioState*>(BIO_get_data(bio)); }

bool Retryable(int err) { return err == EAGAIN || err == EWOULDBLOCK || err == EINTR; }

int BioWrite(BIO* bio, const char* data, size_t n, size_t* written) {
  SocketBioState* s = State(bio);
  BIO_clear_retry_flags(bio);
  ssize_t r = ::send(s->fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (r >= 0) {
    *written = size_t(r);
    return 1;
  }
  s->last_errno = errno;
  if (Retryable(s->last_errno)) BIO_set_retry_write(bio);
  return 0;
}

int BioRead(BIO* bio, char* data, size_t n, size_t* read) {
  SocketBioState* s = State(bio);
  BIO_clear_retry_flags(bio);
  if (s->hold_reads) {  // as if nothing had arrived yet
    s->last_errno = EAGAIN;
    BIO_set_retry_read(bio);
    return 0;
  }
  ssize_t r = ::recv(s->fd, data, n, MSG_DONTWAIT);
  if (r > 0) {
    *read = size_t(r);
    s->bytes_read += uint64_t(r);
    return 1;
  }
  if (r == 0) {
    s->last_errno = 0;
    BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
    return 0;
  }
  s->last_errno = errno;
  if (Retryable(s->last_errno)) BIO_set_retry_read(bio);
  return 0;
}

long BioCtrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:  // send() already handed everything to the kernel
      return 1;
    case BIO_CTRL_EOF: return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0;
    default: return 0;
  }
}

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* Method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ferry socket");
    BIO_meth_set_write_ex(m, BioWrite);
    BIO_meth_set_read_ex(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

}  // namespace

BIO* NewSocketBio(SocketBioState* state) {
  BIO* bio = BIO_new(Method());
  if (bio != nullptr) BIO_set_data(bio, state);
  return bio;
}

}  // namespace transport
