// `frugal convert DIR -o OUT.gguf [--type f32|f16|bf16|q8_0]`: writes a
// Hugging Face directory as a GGUF file with llama.cpp's metadata and tensor
// layout (see src/formats/hf/hf_convert.h). Tensors are converted one at a
// time while the file is written.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli_commands.h"
#include "formats/hf/hf_convert.h"
#include "quant/reference.h"
#include "tokenizer/pre_tokenizer.h"

namespace frugal::cli {
namespace {

struct ConvertArgs {
  std::string input, output, type = "auto";
};

int run(const ConvertArgs& a) {
  auto fail = [](const Status& s) {
    std::fprintf(stderr, "error: %s\n", s.to_string().c_str());
    return 1;
  };
  const auto t0 = std::chrono::steady_clock::now();
  hf::ConvertOptions options;
  options.resolve_pre = tok::find_pre_tokenizer_name;
  options.encode_row = [](TensorType type, const float* src, void* dst, int64_t n) {
    return quant::quantize_row(type, src, dst, n);
  };
  if (a.type != "auto") {
    const auto t = tensor_type_from_name(a.type);
    if (!t || (*t != TensorType::kF32 && *t != TensorType::kF16 && *t != TensorType::kBF16 && *t != TensorType::kQ8_0))
      return fail(invalid_argument("--type must be auto, f32, f16, bf16 or q8_0"));
    options.weight_type = *t;
  }
  if (!hf::is_hf_model_dir(a.input)) return fail(invalid_argument(a.input + " is not a directory with a config.json"));
  auto model = hf::HfModelDir::open(a.input, options.resolve_pre);
  if (!model.ok()) return fail(model.status());
  auto writer = (*model)->make_gguf_writer(options);
  if (!writer.ok()) return fail(writer.status().with_context(a.input));
  if (Status s = writer->write_to_file(a.output); !s.ok()) return fail(s);
  std::error_code ec;
  std::fprintf(stderr, "%s: %zu tensors, %.2f MB, %s tokenizer (pre '%s'), in %.1f s\n", a.output.c_str(),
               writer->tensor_count(), std::filesystem::file_size(a.output, ec) / 1e6,
               (*model)->vocab().model.c_str(), (*model)->vocab().pre.c_str(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  return 0;
}

}  // namespace

void add_convert_command(CLI::App& app, CommandRegistry& reg) {
  auto a = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "Convert a Hugging Face directory to GGUF");
  cmd->add_option("input", a->input, "Hugging Face model directory")->required();
  cmd->add_option("-o,--output", a->output, "Output GGUF file")->required();
  cmd->add_option("--type", a->type, "Weight type: auto (the checkpoint's), f32, f16, bf16, q8_0")
      ->capture_default_str();
  cmd->callback([a, &reg] { reg.exit_code = run(*a); });
}

FRUGAL_REGISTER_COMMAND(add_convert_command);

}  // namespace frugal::cli
