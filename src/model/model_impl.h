// Private state behind frugal::Model and frugal::InferenceContext.
#pragma once

#include <memory>
#include <mutex>

#include "backend/backend.h"
#include "core/thread_pool.h"
#include "frugal/gguf.h"
#include "frugal/model.h"
#include "frugal/tokenizer.h"
#include "model/arch.h"
#include "model/blocks.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "model/weights.h"

namespace frugal {

struct ModelImpl {
  // GGUF bytes built in memory when the model was loaded from a Hugging Face
  // directory; `file` points into it.
  std::vector<uint8_t> owned_gguf;
  std::unique_ptr<GgufFile> file;
  const ArchSpec* arch = nullptr;
  HParams hp;
  ModelWeights weights;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ThreadPool> pool;
  ModelInfo info;
  // Weights uploaded to the GPU by the first context that asked for them.
  mutable std::mutex device_mutex;
  mutable std::shared_ptr<backend::DeviceModel> device_model;
};

struct ContextImpl {
  const ModelImpl* model = nullptr;
  ContextOptions options;
  KvCache kv;
  ForwardBuffers buf;
  kernels::MatmulScratch mm;
  std::vector<int32_t> first_pos, last_pos;  // per sequence, reused by forward()
  // Layers [0, gpu_layers) run on `device`; the CPU KV cache then holds only
  // the remaining layers (kv layer = layer - gpu_layers).
  std::unique_ptr<backend::DeviceContext> device;
  int gpu_layers = 0;
  std::vector<float> logits;  // the CPU output head's rows (step() views them)
};

}  // namespace frugal
