// Private state behind frugal::Model and frugal::InferenceContext.
#pragma once

#include <memory>

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
};

struct ContextImpl {
  const ModelImpl* model = nullptr;
  ContextOptions options;
  KvCache kv;
  ForwardBuffers buf;
  kernels::MatmulScratch mm;
  std::vector<int32_t> first_pos, last_pos;  // per sequence, reused by forward()
};

}  // namespace frugal
