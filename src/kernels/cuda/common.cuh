// Small device helpers shared by the CUDA kernel files.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "kernels/cuda/cuda_kernels.h"

namespace frugal::cuda {

// GGUF blocks are only guaranteed 2-byte alignment inside a row, so wider
// fields are assembled from 16-bit loads.
__device__ __forceinline__ uint32_t load_u16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}
__device__ __forceinline__ uint32_t load_u32_align2(const uint8_t* p) {
  return load_u16(p) | (load_u16(p + 2) << 16);
}
__device__ __forceinline__ float half_bits_to_float(uint32_t bits) {
  return __half2float(__ushort_as_half(static_cast<unsigned short>(bits)));
}
__device__ __forceinline__ float bf16_bits_to_float(uint32_t bits) { return __uint_as_float(bits << 16); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over a block whose size is a multiple of 32 (<= 1024); every thread
// gets the result. `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read from a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int n_warps = (blockDim.x + 31) / 32;
  v = lane < n_warps ? scratch[lane] : 0.0f;
  return warp_sum(v);
}

// Quantizes one 32-value block held one value per lane of a warp: scale
// amax / 127 into *d, quants rounded to nearest even into q[lane]. Every
// kernel that produces 8-bit activations goes through here, so a fused
// producer gives bit-identical quants to quantize_activations_q8().
__device__ __forceinline__ void quantize_block32(float v, int lane, int8_t* __restrict__ q, float* __restrict__ d) {
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  q[lane] = static_cast<int8_t>(__float2int_rn(v * inv));
  if (lane == 0) *d = amax / 127.0f;
}

// The same quantization of a block spread over 8 consecutive lanes of 4
// values each (float4 loads): quants to *q, the scale from lane % 8 == 0.
// Every lane of the warp must call it (out-of-range lanes too, ignoring
// the result).
__device__ __forceinline__ void quantize_block32_x4(float4 v, int lane, char4* __restrict__ q, float* __restrict__ d) {
  float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
  for (int o = 1; o < 8; o <<= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  *q = make_char4(static_cast<signed char>(__float2int_rn(v.x * inv)), static_cast<signed char>(__float2int_rn(v.y * inv)),
                  static_cast<signed char>(__float2int_rn(v.z * inv)), static_cast<signed char>(__float2int_rn(v.w * inv)));
  if (lane % 8 == 0) *d = amax / 127.0f;
}

// 16-bit activations for the cuBLAS GEMMs, written by the kernel that
// produces the fp32 values (rounded to nearest even, as the conversion
// kernels do). store2_16: elements 2 * i2 and 2 * i2 + 1; store4_16:
// 4 * i4 .. 4 * i4 + 3.
__device__ __forceinline__ void store_16(const Act16Out& a, int64_t i, float v) {
  if (a.bf16)
    static_cast<__nv_bfloat16*>(a.data)[i] = __float2bfloat16_rn(v);
  else
    static_cast<__half*>(a.data)[i] = __float2half_rn(v);
}
__device__ __forceinline__ void store2_16(const Act16Out& a, int64_t i2, float x, float y) {
  if (a.bf16)
    reinterpret_cast<__nv_bfloat162*>(a.data)[i2] = __floats2bfloat162_rn(x, y);
  else
    reinterpret_cast<__half2*>(a.data)[i2] = __floats2half2_rn(x, y);
}
__device__ __forceinline__ void store4_16(const Act16Out& a, int64_t i4, float4 v) {
  store2_16(a, 2 * i4, v.x, v.y);
  store2_16(a, 2 * i4 + 1, v.z, v.w);
}

// Programmatic dependent launch (sm_90 and later). A kernel started with
// launch_kernel() while programmatic launch is on may begin while the kernel
// before it in the stream still runs: before pdl_wait() it may only read
// data no kernel writes (weights). pdl_wait() returns once every earlier
// kernel has finished and its writes are visible; pdl_launch_dependents()
// then lets the next kernel's blocks start their own prologue. On older
// architectures both are no-ops and launches are plain.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
// Both at once, for kernels with nothing to do before their inputs are ready.
__device__ __forceinline__ void pdl_enter() {
  pdl_wait();
  pdl_launch_dependents();
}

template <class... Params, class... Args>
cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                          Args&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = &attr;
  config.numAttrs = programmatic_launch() ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

inline unsigned int blocks_for(int64_t n, int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

}  // namespace frugal::cuda
