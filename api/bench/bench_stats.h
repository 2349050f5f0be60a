// Measurement helpers of pinvault-bench: a latency histogram, and readers for what the
// operating system says about the machine and about other processes (RSS, CPU time, load
// average, which process listens on a port).
//
// Nothing here talks to a realm; the load generator (api/bench/pinvault_bench.cc) owns that.
#ifndef PINVAULT_API_BENCH_STATS_H_
#define PINVAULT_API_BENCH_STATS_H_

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pinvault::api::bench {

// LatencyHistogram records durations in nanoseconds in log-linear buckets (128 exact
// buckets, then 64 per power of two: a reported percentile is within 1.6% of the recorded
// value). The maximum is exact. Not synchronised: one thread records, or the owner locks.
class LatencyHistogram {
 public:
  LatencyHistogram();

  // Record adds one duration.
  void Record(uint64_t nanos);

  // Merge adds every value of `other`.
  void Merge(const LatencyHistogram& other);

  // Reset forgets every value.
  void Reset();

  uint64_t count() const { return count_; }
  uint64_t max_nanos() const { return max_; }
  double mean_nanos() const { return count_ == 0 ? 0 : static_cast<double>(sum_) / count_; }

  // Percentile returns the value below which a fraction `q` (0..1) of the recorded values
  // lie (the middle of that bucket, never above the maximum); 0 when empty.
  uint64_t Percentile(double q) const;

 private:
  static size_t BucketOf(uint64_t nanos);
  static uint64_t BucketMiddle(size_t index);

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t max_ = 0;
};

// ProcessSample: what /proc says about one process at one moment.
struct ProcessSample {
  bool ok = false;             // false if the process could not be read (gone, no access)
  long rss_kb = 0;             // VmRSS
  long hwm_kb = 0;             // VmHWM (peak RSS)
  double cpu_seconds = 0;      // user + system time
  long threads = 0;
};

// SampleProcess reads /proc/<pid>/status and /proc/<pid>/stat.
ProcessSample SampleProcess(pid_t pid);

// SelfCpuSeconds returns this process's user + system CPU time (getrusage).
double SelfCpuSeconds();

// MachineCpuSeconds returns the busy (non-idle, non-iowait) CPU seconds of the whole machine
// since boot, summed over CPUs (/proc/stat), or nullopt.
std::optional<double> MachineBusySeconds();

// LoadAverage returns the 1-, 5- and 15-minute load averages (/proc/loadavg); zeros if
// unreadable.
std::array<double, 3> LoadAverage();

// FindListeningPid returns the process that has a TCP socket listening on `port` (any local
// address, IPv4 or IPv6), found through /proc/net/tcp{,6} and /proc/*/fd; nullopt if none is
// visible to this user.
std::optional<pid_t> FindListeningPid(uint16_t port);

// MachineDescription returns one line about the machine: CPU model, CPU count, memory,
// kernel.
std::string MachineDescription();

// SoftwareVersions returns "name version" pairs for the compiler and the libraries the
// benchmark's figures depend on (libsodium, OpenSSL, SQLite, Boost, SoftHSM2 when found).
std::vector<std::pair<std::string, std::string>> SoftwareVersions();

// FormatMillis formats nanoseconds as milliseconds with 2 decimals ("12.34").
std::string FormatMillis(uint64_t nanos);

}  // namespace pinvault::api::bench

#endif  // PINVAULT_API_BENCH_STATS_H_
