// The decode roofline's GPU bandwidth from the memory clock and bus width a
// device reports.
#include <gtest/gtest.h>

#include "backend/backend.h"

namespace frugal::testing {
namespace {

TEST(DeviceBandwidth, ClockAndBusWidthGiveTheDatasheetFigures) {
  // H100 SXM: HBM3 at 2,619 MHz on 5,120 bits, 3.35 TB/s on its datasheet.
  EXPECT_NEAR(backend::memory_bandwidth_gbps(2619000, 5120), 3352.3, 0.1);
  // A100 40GB: HBM2 at 1,215 MHz on 5,120 bits, 1,555 GB/s.
  EXPECT_NEAR(backend::memory_bandwidth_gbps(1215000, 5120), 1555.2, 0.1);
  // L4: GDDR6 reported as 6,251 MHz on 192 bits, 300 GB/s.
  EXPECT_NEAR(backend::memory_bandwidth_gbps(6251000, 192), 300.0, 0.1);
}

TEST(DeviceBandwidth, UnknownClockOrWidthIsZero) {
  EXPECT_EQ(backend::memory_bandwidth_gbps(0, 5120), 0.0);
  EXPECT_EQ(backend::memory_bandwidth_gbps(2619000, 0), 0.0);
  EXPECT_EQ(backend::memory_bandwidth_gbps(-1, -1), 0.0);
}

}  // namespace
}  // namespace frugal::testing
