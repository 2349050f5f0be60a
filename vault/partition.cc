#include "vault/partition.h"

#include <bit>

namespace pinvault::vault {

Status ValidatePartitionCount(uint32_t count) {
  if (count == 0 || count > kMaxPartitionCount || !std::has_single_bit(count)) {
    return InvalidArgumentError("the partition count must be a power of two from 1 to " +
                                std::to_string(kMaxPartitionCount) + ", not " +
                                std::to_string(count));
  }
  return OkStatus();
}

int PartitionBits(uint32_t count) { return std::countr_zero(count); }

uint32_t PartitionOf(const RecordId& id, uint32_t count) {
  int bits = PartitionBits(count);
  if (bits == 0) return 0;
  uint32_t top = uint32_t{id[0]} << 24 | uint32_t{id[1]} << 16 | uint32_t{id[2]} << 8 | id[3];
  return top >> (32 - bits);
}

std::string ToString(const PartitionId& partition) {
  return std::to_string(partition.index) + "/" + std::to_string(partition.count);
}

}  // namespace pinvault::vault
