#include "api/bench/bench_stats.h"

#include <dirent.h>
#include <sodium.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/opensslv.h>

#include <algorithm>
#include <bit>
#include <boost/version.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

namespace pinvault::api::bench {
namespace {

constexpr int kSubBits = 7;                          // 128 exact buckets
constexpr uint64_t kExact = uint64_t{1} << kSubBits;  // 128
constexpr uint64_t kHalf = kExact / 2;                // 64 buckets per power of two
constexpr size_t kBucketCount = kExact + 64 * kHalf;  // up to 2^70 ns: more than enough

// ReadFile returns the contents of a small /proc file ("" if unreadable).
std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return "";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// StatusField returns the number after "<field>:" in a /proc/<pid>/status text, or -1.
long StatusField(const std::string& status, std::string_view field) {
  size_t at = 0;
  while ((at = status.find(field, at)) != std::string::npos) {
    if ((at == 0 || status[at - 1] == '\n') && at + field.size() < status.size() &&
        status[at + field.size()] == ':') {
      return std::strtol(status.c_str() + at + field.size() + 1, nullptr, 10);
    }
    at += field.size();
  }
  return -1;
}

}  // namespace

LatencyHistogram::LatencyHistogram() : buckets_(kBucketCount, 0) {}

size_t LatencyHistogram::BucketOf(uint64_t nanos) {
  if (nanos < kExact) return static_cast<size_t>(nanos);
  int shift = std::bit_width(nanos) - kSubBits;  // >= 1; nanos >> shift is in [64, 128)
  size_t index = kExact + static_cast<size_t>(shift - 1) * kHalf + ((nanos >> shift) - kHalf);
  return std::min(index, kBucketCount - 1);
}

uint64_t LatencyHistogram::BucketMiddle(size_t index) {
  if (index < kExact) return index;
  size_t shift = (index - kExact) / kHalf + 1;
  uint64_t mantissa = (index - kExact) % kHalf + kHalf;
  uint64_t low = mantissa << shift;
  return low + ((uint64_t{1} << shift) >> 1);
}

void LatencyHistogram::Record(uint64_t nanos) {
  ++buckets_[BucketOf(nanos)];
  ++count_;
  sum_ += nanos;
  max_ = std::max(max_, nanos);
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBucketCount; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

void LatencyHistogram::Reset() {
  std::fill(buckets_.begin(), buckets_.end(), 0);
  count_ = 0;
  sum_ = 0;
  max_ = 0;
}

uint64_t LatencyHistogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the value wanted (1-based): ceil(q * count), at least 1.
  uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(q * static_cast<double>(count_) +
                                                              0.999999));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBucketCount; ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::min(BucketMiddle(i), max_);
  }
  return max_;
}

ProcessSample SampleProcess(pid_t pid) {
  ProcessSample sample;
  std::string status = ReadFile("/proc/" + std::to_string(pid) + "/status");
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (status.empty() || stat.empty()) return sample;
  sample.rss_kb = StatusField(status, "VmRSS");
  sample.hwm_kb = StatusField(status, "VmHWM");
  sample.threads = StatusField(status, "Threads");
  // /proc/<pid>/stat: "pid (comm) state ..." where comm may hold spaces; fields after the
  // last ')' are numbered from 3 (state). utime and stime are fields 14 and 15.
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return sample;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int number = 3; fields >> field; ++number) {
    if (number == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (number == 15) {
      stime = std::strtoull(field.c_str(), nullptr, 10);
      break;
    }
  }
  long ticks = sysconf(_SC_CLK_TCK);
  sample.cpu_seconds = static_cast<double>(utime + stime) / static_cast<double>(ticks);
  sample.ok = true;
  return sample;
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

std::optional<double> MachineBusySeconds() {
  std::string stat = ReadFile("/proc/stat");
  if (stat.rfind("cpu ", 0) != 0) return std::nullopt;
  std::istringstream line(stat.substr(4, stat.find('\n') - 4));
  // user nice system idle iowait irq softirq steal ...
  unsigned long long value = 0, busy = 0;
  for (int i = 0; line >> value; ++i) {
    if (i != 3 && i != 4 && i < 8) busy += value;
  }
  return static_cast<double>(busy) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::array<double, 3> LoadAverage() {
  std::array<double, 3> load{0, 0, 0};
  std::string text = ReadFile("/proc/loadavg");
  std::sscanf(text.c_str(), "%lf %lf %lf", &load[0], &load[1], &load[2]);
  return load;
}

std::optional<pid_t> FindListeningPid(uint16_t port) {
  // Listening sockets on the port: "sl local_address rem_address st ... inode" with the
  // address as HEX_IP:HEX_PORT and st 0A = LISTEN.
  std::vector<std::string> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream lines(ReadFile(table));
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      if (!(fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
            timeout >> inode)) {
        continue;
      }
      size_t colon = local.rfind(':');
      if (colon == std::string::npos || state != "0A") continue;
      if (std::strtoul(local.c_str() + colon + 1, nullptr, 16) != port) continue;
      inodes.push_back("socket:[" + inode + "]");
    }
  }
  if (inodes.empty()) return std::nullopt;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return std::nullopt;
  std::optional<pid_t> found;
  while (dirent* entry = readdir(proc)) {
    if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
    std::string fd_dir = std::string("/proc/") + entry->d_name + "/fd";
    DIR* fds = opendir(fd_dir.c_str());
    if (fds == nullptr) continue;
    while (dirent* fd = readdir(fds)) {
      if (fd->d_name[0] == '.') continue;
      char target[64] = {};
      std::string link = fd_dir + "/" + fd->d_name;
      ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
      if (n <= 0) continue;
      if (std::find(inodes.begin(), inodes.end(), std::string(target, n)) != inodes.end()) {
        found = static_cast<pid_t>(std::atol(entry->d_name));
        break;
      }
    }
    closedir(fds);
    if (found) break;
  }
  closedir(proc);
  return found;
}

std::string MachineDescription() {
  std::string model = "unknown CPU";
  std::istringstream cpuinfo(ReadFile("/proc/cpuinfo"));
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  long memory_mb = StatusField(ReadFile("/proc/meminfo"), "MemTotal") / 1024;
  utsname names{};
  uname(&names);
  return model + ", " + std::to_string(cpus) + " CPUs, " + std::to_string(memory_mb) +
         " MB RAM, Linux " + names.release;
}

std::vector<std::pair<std::string, std::string>> SoftwareVersions() {
  std::vector<std::pair<std::string, std::string>> versions;
#if defined(__clang__)
  versions.emplace_back("compiler", std::string("clang ") + __clang_version__);
#elif defined(__GNUC__)
  versions.emplace_back("compiler", std::string("gcc ") + __VERSION__);
#endif
  versions.emplace_back("libsodium", sodium_version_string());
  versions.emplace_back("OpenSSL", OPENSSL_VERSION_STR);
  versions.emplace_back("SQLite", sqlite3_libversion());
  versions.emplace_back("Boost", std::to_string(BOOST_VERSION / 100000) + "." +
                                     std::to_string(BOOST_VERSION / 100 % 1000) + "." +
                                     std::to_string(BOOST_VERSION % 100));
  if (FILE* pipe = popen("softhsm2-util --version 2>/dev/null", "r")) {
    char buffer[64] = {};
    if (std::fgets(buffer, sizeof(buffer), pipe) != nullptr) {
      std::string version(buffer);
      while (!version.empty() && (version.back() == '\n' || version.back() == ' ')) {
        version.pop_back();
      }
      if (!version.empty()) versions.emplace_back("SoftHSM2", version);
    }
    pclose(pipe);
  }
  return versions;
}

std::string FormatMillis(uint64_t nanos) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", static_cast<double>(nanos) / 1e6);
  return text;
}

}  // namespace pinvault::api::bench
