// Parallel workers of rcpu-prune-study: claims on the runs of a shared cache folder, and atomic file
// writes. POSIX (Linux: /proc tells a reused process id from the one that made a claim).
#ifndef RCPU_TOOLS_STUDY_CLAIMS_HPP
#define RCPU_TOOLS_STUDY_CLAIMS_HPP

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

namespace study {

inline std::string host_name() {
  char h[256] = {0};
  if (::gethostname(h, sizeof h - 1) != 0) return "?";
  return h;
}

// Written whole under a name of this host and process, then renamed: a reader (or another worker
// writing the same file) never sees half a file.
inline void write_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + host_name() + "." + std::to_string(::getpid());
  std::ofstream out(tmp, std::ios::binary);
  out << content;
  out.close();  // a failed flush (a full disk) shows here
  if (!out) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + tmp);
  }
  std::filesystem::rename(tmp, path);
}

// Who a process is, so that a claim of a process that is gone, or whose id was reused after it ended
// or after a reboot, is recognised: "host pid start boot" (start: field 22 of /proc/PID/stat, the
// process's start time since boot; boot: /proc/sys/kernel/random/boot_id; "-" where unknown).
inline std::string process_start(long pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s;
  std::getline(f, s);
  const std::size_t close = s.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return "-";
  std::istringstream in(s.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && (in >> field); ++i)
    if (i == 22) return field;
  return "-";
}
inline std::string boot_id() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  return id.empty() ? "-" : id;
}
inline std::string process_identity() {
  const long pid = long(::getpid());
  return host_name() + " " + std::to_string(pid) + " " + process_start(pid) + " " + boot_id();
}

// A worker claims a run (a file KEY.claim beside the cache files, holding process_identity()) before it
// prunes it, and skips runs another worker holds. A claim is created whole and linked into place, so it
// exists only with its owner's line in it; a stale one (its process gone, of this host) is removed under
// a lock on the folder (.claims.lock), so that two workers never both take it over. Claims of other
// hosts are never judged stale (remove them by hand if their worker died). Claims are removed once the
// run is in the cache, and by the destructor.
class Claims {
 public:
  Claims() : m_me(process_identity()) {}
  Claims(const Claims&) = delete;
  Claims& operator=(const Claims&) = delete;
  ~Claims() {
    for (const std::string& k : m_held) std::remove(path(k).c_str());
  }
  void set_dir(std::string dir) { m_dir = std::move(dir); }

  // True when this process now holds `key`; otherwise `holder` (if given) says who does.
  bool take(const std::string& key, std::string* holder) {
    if (m_held.count(key)) return true;
    std::filesystem::create_directories(m_dir);
    const std::string tmp = path(key) + ".tmp." + host_name() + "." + std::to_string(::getpid());
    write_atomic(tmp, m_me + "\n");
    bool got = false;
    for (int attempt = 0; attempt < 3 && !got; ++attempt) {
      if (::link(tmp.c_str(), path(key).c_str()) == 0) {
        got = true;
        break;
      }
      const int err = errno;
      if (err != EEXIST) {
        if (err == EPERM || err == ENOTSUP || err == EOPNOTSUPP || err == ENOSYS) {  // no hard links here
          got = create_locked(key);
          if (got) break;
        } else {
          std::remove(tmp.c_str());
          throw std::runtime_error("cannot create " + path(key) + ": " + std::strerror(err));
        }
      }
      // It exists: judge it under the folder's lock (nobody else removes it meanwhile).
      Lock lock(m_dir + "/.claims.lock");
      if (!exists(key)) continue;  // released meanwhile: try again
      const std::string who = owner(key);
      if (!stale(who)) {
        if (holder != nullptr) *holder = who;
        break;
      }
      std::fprintf(stderr, "  %s: taking over a stale claim (%s)\n", key.c_str(), who.empty() ? "empty" : who.c_str());
      std::remove(path(key).c_str());
    }
    std::remove(tmp.c_str());
    if (got) m_held.insert(key);
    return got;
  }
  void release(const std::string& key) {
    if (m_held.erase(key)) std::remove(path(key).c_str());
  }
  // Whether another live worker holds `key`.
  bool held_elsewhere(const std::string& key) const {
    if (m_held.count(key) || !exists(key)) return false;
    return !stale(owner(key));
  }

 private:
  struct Lock {
    int fd = -1;
    explicit Lock(const std::string& file) {
      fd = ::open(file.c_str(), O_RDWR | O_CREAT, 0644);
      if (fd < 0) throw std::runtime_error("cannot open " + file + ": " + std::strerror(errno));
      while (::flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) throw std::runtime_error("cannot lock " + file + ": " + std::strerror(errno));
    }
    ~Lock() {
      if (fd >= 0) ::close(fd);  // closing releases the lock
    }
    Lock(const Lock&) = delete;
    Lock& operator=(const Lock&) = delete;
  };

  std::string path(const std::string& key) const { return m_dir + "/" + key + ".claim"; }
  bool exists(const std::string& key) const {
    std::error_code ec;
    return std::filesystem::exists(path(key), ec);
  }
  std::string owner(const std::string& key) const {
    std::ifstream f(path(key));
    std::string line;
    std::getline(f, line);
    return line;
  }
  // Without hard links: created and written under the lock, so no one judges it half written.
  bool create_locked(const std::string& key) {
    Lock lock(m_dir + "/.claims.lock");
    const int fd = ::open(path(key).c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
      if (errno == EEXIST) return false;
      throw std::runtime_error("cannot create " + path(key) + ": " + std::strerror(errno));
    }
    const std::string line = m_me + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == ssize_t(line.size());
    ::close(fd);
    if (!ok) {
      std::remove(path(key).c_str());
      throw std::runtime_error("cannot write " + path(key));
    }
    return true;
  }
  // Stale: unreadable (not a claim this tool finished writing), or of this host and a process that is
  // gone: another boot, no such process, or a process of that id that started at another time (the id
  // was reused), or this very process (its claims are all in m_held).
  bool stale(const std::string& who) const {
    std::istringstream in(who);
    std::string host, start, boot;
    long pid = 0;
    if (!(in >> host >> pid) || pid <= 0) return true;
    if (host != host_name()) return false;
    in >> start >> boot;
    const std::string my_boot = boot_id();
    if (!boot.empty() && boot != "-" && my_boot != "-" && boot != my_boot) return true;
    if (pid == long(::getpid())) return true;
    if (::kill(pid_t(pid), 0) != 0 && errno == ESRCH) return true;
    if (!start.empty() && start != "-") {
      const std::string now = process_start(pid);
      if (now != "-" && now != start) return true;
    }
    return false;
  }

  std::string m_dir, m_me;
  std::set<std::string> m_held;
};

}  // namespace study

#endif  // RCPU_TOOLS_STUDY_CLAIMS_HPP
