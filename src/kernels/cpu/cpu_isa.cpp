#include "kernels/cpu/cpu_isa.h"

#include <cstdlib>
#include <cstring>

#include "kernels/cpu/kernel_table.h"

namespace frugal::kernels {
namespace {

CpuIsa detect() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni");
  return avx512 ? CpuIsa::kAvx512 : avx2 ? CpuIsa::kAvx2 : CpuIsa::kGeneric;
#else
  return CpuIsa::kGeneric;
#endif
}

KernelTable build(CpuIsa isa) {
  KernelTable t;
  fill_generic(t);
  fill_generic_vec(t);
  if (isa >= CpuIsa::kAvx2) {
    fill_avx2(t);
    fill_avx2_vec(t);
    fill_avx2_packed(t);
  }
  if (isa >= CpuIsa::kAvx512) {
    fill_avx512(t);
    fill_avx512_vec(t);
  }
  return t;
}

struct State {
  CpuIsa detected;
  CpuIsa active;
  KernelTable tables[3];
  State() {
    detected = detect();
    for (int i = 0; i <= static_cast<int>(detected); ++i) tables[i] = build(static_cast<CpuIsa>(i));
    active = detected;
#if defined(__x86_64__)
    g_weight_prefetch = !__builtin_cpu_is("amd");
#endif
    if (const char* env = std::getenv("FRUGAL_CPU_PREFETCH")) g_weight_prefetch = std::strcmp(env, "0") != 0;
    if (const char* env = std::getenv("FRUGAL_CPU_ISA")) {
      CpuIsa want = detected;
      if (!std::strcmp(env, "generic")) want = CpuIsa::kGeneric;
      else if (!std::strcmp(env, "avx2")) want = CpuIsa::kAvx2;
      else if (!std::strcmp(env, "avx512")) want = CpuIsa::kAvx512;
      if (want < detected) active = want;
    }
  }
};

State& state() {
  static State s;
  return s;
}

}  // namespace

bool g_weight_prefetch = true;

std::string_view isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::kGeneric: return "generic";
    case CpuIsa::kAvx2: return "avx2";
    case CpuIsa::kAvx512: return "avx512";
  }
  return "unknown";
}

CpuIsa detected_isa() { return state().detected; }
CpuIsa active_isa() { return state().active; }

bool set_isa(CpuIsa isa) {
  State& s = state();
  if (isa > s.detected) return false;
  s.active = isa;
  return true;
}

bool weight_prefetch() {
  state();
  return g_weight_prefetch;
}

void set_weight_prefetch(bool on) {
  state();
  g_weight_prefetch = on;
}

const KernelTable& kernel_table() {
  State& s = state();
  return s.tables[static_cast<int>(s.active)];
}

}  // namespace frugal::kernels
