// `frugal inspect FILE`: metadata and tensor table of a GGUF file.
#include <cstdio>
#include <string>

#include "cli_commands.h"
#include "frugal/gguf.h"

namespace frugal::cli {

void add_inspect_command(CLI::App& app, CommandRegistry& reg) {
  auto* cmd = app.add_subcommand("inspect", "Print the metadata and tensor table of a GGUF file");
  auto path = std::make_shared<std::string>();
  auto max_items = std::make_shared<size_t>(8);
  cmd->add_option("file", *path, "GGUF file")->required();
  cmd->add_option("--array-items", *max_items, "Array elements to show per key");
  cmd->callback([path, max_items, &reg] {
    auto f = GgufFile::open(*path);
    if (!f.ok()) {
      std::fprintf(stderr, "error: %s\n", f.status().to_string().c_str());
      reg.exit_code = 1;
      return;
    }
    const GgufFile& g = **f;
    std::printf("file: %s\nGGUF version: %u\nalignment: %llu\ndata offset: %llu\nfile size: %zu\n",
                g.path().c_str(), g.version(), (unsigned long long)g.alignment(),
                (unsigned long long)g.data_offset(), g.file_size());
    std::printf("\nmetadata (%zu keys):\n", g.metadata().size());
    for (const auto& kv : g.metadata())
      std::printf("  %-40s %-4s %s\n", kv.key.c_str(),
                  std::string(gguf_value_type_name(kv.value.type)).c_str(),
                  kv.value.to_display_string(*max_items).c_str());
    std::printf("\ntensors (%zu):\n", g.tensors().size());
    uint64_t total = 0;
    for (const auto& t : g.tensors()) {
      std::string shape;
      for (size_t i = 0; i < t.dims.size(); ++i)
        shape += (i ? " x " : "") + std::to_string(t.dims[i]);
      std::printf("  %-32s %-6s %-20s offset %-12llu %llu bytes\n", t.name.c_str(),
                  std::string(tensor_type_name(t.type)).c_str(), shape.c_str(),
                  (unsigned long long)t.offset, (unsigned long long)t.n_bytes);
      total += t.n_bytes;
    }
    std::printf("\ntotal tensor bytes: %llu\n", (unsigned long long)total);
  });
}

}  // namespace frugal::cli

FRUGAL_REGISTER_COMMAND(frugal::cli::add_inspect_command);
