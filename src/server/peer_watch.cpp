#include "server/peer_watch.h"

#include <dirent.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cstdlib>

namespace frugal::server {
namespace {

// Numeric host and port of a socket address, as getnameinfo prints them
// (the form cpp-httplib stores in a Request).
bool endpoint_of(const sockaddr_storage& a, socklen_t len, std::string* host, int* port) {
  char h[NI_MAXHOST], p[NI_MAXSERV];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, h, sizeof h, p, sizeof p,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0)
    return false;
  *host = h;
  *port = std::atoi(p);
  return true;
}

bool socket_matches(int fd, const std::string& local_addr, int local_port, const std::string& remote_addr,
                    int remote_port) {
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  std::string host;
  int port = -1;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0 || !endpoint_of(a, len, &host, &port) ||
      port != local_port || host != local_addr)
    return false;
  len = sizeof a;
  return getpeername(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0 && endpoint_of(a, len, &host, &port) &&
         port == remote_port && host == remote_addr;
}

}  // namespace

PeerWatch PeerWatch::find(const std::string& local_addr, int local_port, const std::string& remote_addr,
                          int remote_port) {
  PeerWatch w;
  if (local_port <= 0 || remote_port <= 0) return w;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return w;
  const int self = dirfd(dir);
  while (dirent* e = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == self) continue;
    if (socket_matches(static_cast<int>(fd), local_addr, local_port, remote_addr, remote_port)) {
      w.fd_ = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return w;
}

bool PeerWatch::peer_closed() const {
  if (fd_ < 0) return false;
  pollfd p{.fd = fd_, .events = POLLIN | POLLRDHUP, .revents = 0};
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLHUP | POLLERR | POLLRDHUP)) return true;
  if (p.revents & POLLIN) {
    char c;
    return recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  }
  return false;
}

}  // namespace frugal::server
