// Whether the client of an HTTP request is still connected, for handlers that
// hold a request open without writing to it (non-streaming generation).
//
// cpp-httplib 0.11 gives a handler neither its socket nor a "peer closed"
// query, and a closed peer only shows up when a write fails, which a
// non-streaming response does once, at the end. The request does carry both
// endpoint addresses, which name exactly one TCP connection, so the socket is
// found among the process's descriptors by those and then watched with a
// non-blocking poll: an orderly close (FIN) or a reset marks the client gone,
// which is what vLLM's "is_disconnected" reports too.
#pragma once

#include <string>

namespace frugal::server {

class PeerWatch {
 public:
  // The connection whose local and remote numeric address:port are these
  // (as cpp-httplib fills Request::local_addr/remote_addr). Not found (an
  // unusual platform, a connection already gone): watching() is false.
  static PeerWatch find(const std::string& local_addr, int local_port, const std::string& remote_addr,
                        int remote_port);

  bool watching() const { return fd_ >= 0; }
  // True once the peer closed or reset the connection. Data the client sent
  // ahead (a pipelined request) is left unread.
  bool peer_closed() const;

 private:
  int fd_ = -1;
};

}  // namespace frugal::server
