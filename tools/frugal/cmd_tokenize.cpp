// `frugal tokenize -m MODEL (-p TEXT | -f FILE) [--bos] [--special]`: prints
// the token ids of the text, separated by single spaces, on one line. Works on
// vocabulary-only GGUF files as well as full models.
#include <cstdio>
#include <memory>
#include <string>

#include "cli_commands.h"
#include "frugal/gguf.h"
#include "frugal/tokenizer.h"
#include "core/mapped_file.h"

namespace frugal::cli {

void add_tokenize_command(CLI::App& app, CommandRegistry& reg) {
  struct Args {
    std::string model;
    std::string prompt;
    std::string file;
    bool bos = false;
    bool special = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("tokenize", "Print the token ids of a text");
  cmd->add_option("-m,--model", args->model, "GGUF file (a vocabulary-only file is enough)")->required();
  auto* prompt = cmd->add_option("-p,--prompt", args->prompt, "Text to tokenize");
  auto* file = cmd->add_option("-f,--file", args->file, "File whose contents to tokenize");
  prompt->excludes(file);
  cmd->add_flag("--bos", args->bos, "Prepend the BOS token (not added otherwise)");
  cmd->add_flag("--special", args->special, "Recognise control tokens such as <s> written in the text");
  cmd->callback([args, prompt, file, &reg] {
    auto fail = [&reg](const std::string& message) {
      std::fprintf(stderr, "error: %s\n", message.c_str());
      reg.exit_code = 1;
    };
    if (prompt->count() == 0 && file->count() == 0) return fail("tokenize: give the text with -p TEXT or -f FILE");
    std::string text = args->prompt;
    if (file->count() > 0) {
      auto contents = read_file_to_string(args->file);
      if (!contents.ok()) return fail(contents.status().to_string());
      text = std::move(contents).value();
    }
    auto gguf = GgufFile::open(args->model);
    if (!gguf.ok()) return fail(gguf.status().to_string());
    auto tokenizer = Tokenizer::from_gguf(**gguf);
    if (!tokenizer.ok()) return fail(args->model + ": " + tokenizer.status().to_string());
    const auto ids = (*tokenizer)->encode(text, {.add_bos = args->bos, .parse_special = args->special, .add_eos = false});
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (i) line += ' ';
      line += std::to_string(ids[i]);
    }
    std::printf("%s\n", line.c_str());
  });
}

}  // namespace frugal::cli

FRUGAL_REGISTER_COMMAND(frugal::cli::add_tokenize_command);
