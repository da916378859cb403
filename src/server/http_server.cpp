// HTTP front end: cpp-httplib worker threads parse requests, hand them to the
// scheduler and relay its events (JSON or server-sent events). The scheduler
// thread alone touches the model state.
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <random>
#include <thread>

#include "engine/metrics.h"
#include "engine/scheduler.h"
#include "frugal/model.h"
#include "frugal/server.h"
#include "server/openai_api.h"
#include "server/peer_watch.h"

namespace frugal {
namespace {

using server::ApiError;
using server::Endpoint;
using server::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kFingerprint = "frugal-0.1.0";

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.http_status;
  res.set_content(server::dump(server::error_body(e)), "application/json");
}

ApiError simple_error(int status, std::string message, std::string type, std::string code = "") {
  return ApiError{.http_status = status, .message = std::move(message), .type = std::move(type),
                  .param = "", .code = std::move(code)};
}

std::string random_id(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  static const char* alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += alphabet[rng() % 62];
  return id;
}

// Everything the handlers share.
struct ServerState {
  ServerOptions options;
  std::unique_ptr<Model> model;
  std::unique_ptr<InferenceContext> ctx;
  std::unique_ptr<engine::EngineMetrics> metrics;
  std::unique_ptr<engine::Scheduler> scheduler;
  std::optional<ChatTemplate> chat_template;
  server::ModelContext mc;
  std::atomic<bool> draining{false};
  std::atomic<int> in_flight{0};  // HTTP generation requests not yet fully answered
  std::mt19937_64 seed_rng{std::random_device{}()};
  std::mutex seed_mu;

  uint64_t next_random_seed() {
    std::lock_guard lk(seed_mu);
    return seed_rng();
  }
};

// Counts a generation request as in flight until the last byte is written.
struct InFlight {
  explicit InFlight(ServerState& s) : st(&s) { ++st->in_flight; }
  ~InFlight() {
    if (st) --st->in_flight;
  }
  InFlight(InFlight&& o) noexcept : st(o.st) { o.st = nullptr; }
  ServerState* st;
};

json usage_json(const server::ParsedRequest& p, int completion_tokens, int cached) {
  int prompt = 0;
  for (int n : p.prompt_tokens) prompt += n;
  return json{{"prompt_tokens", prompt},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt + completion_tokens},
              {"prompt_tokens_details", {{"cached_tokens", cached}}}};
}

// Accumulated output of one choice, for non-streaming responses.
struct ChoiceResult {
  std::string text;
  std::vector<engine::TokenLogprob> logprobs;
  std::string finish_reason = "length";
  int tokens = 0;
};

void handle_generation(ServerState& st, const httplib::Request& req, httplib::Response& res,
                       Endpoint endpoint) {
  server::ParsedRequest parsed;
  if (auto e = server::parse_generation_request(req.body, endpoint, st.mc, st.next_random_seed(), parsed))
    return send_error(res, *e);
  const int n_choices = static_cast<int>(parsed.generation.choices.size());
  auto submitted = st.scheduler->submit(std::move(parsed.generation));
  if (!submitted.ok()) {
    const Status& s = submitted.status();
    if (s.code() == ErrorCode::kResourceExhausted) {
      res.set_header("Retry-After", "1");
      return send_error(res, simple_error(429, s.message(), "rate_limit_error", "queue_full"));
    }
    return send_error(res, simple_error(400, s.message(), "invalid_request_error"));
  }
  std::shared_ptr<engine::RequestStream> stream = *submitted;
  const bool chat = endpoint == Endpoint::kChat;
  const std::string id = random_id(chat ? "chatcmpl-" : "cmpl-");
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  const std::string& model_id = st.mc.model_id;
  const Tokenizer& tok = st.model->tokenizer();

  if (!parsed.stream) {
    InFlight guard(st);
    std::vector<ChoiceResult> results(n_choices);
    std::vector<engine::ChoiceEvent> events;
    // Nothing is written until the end, so a client that leaves is seen on
    // its socket: it cancels the sequences and frees their KV blocks at once.
    const server::PeerWatch peer =
        server::PeerWatch::find(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
    for (;;) {
      if (peer.peer_closed()) {
        st.scheduler->cancel(stream);
        res.status = 499;  // nobody reads it; the connection is closed
        return;
      }
      events.clear();
      const auto r = stream->wait(events, std::chrono::milliseconds(100));
      for (auto& ev : events) {
        ChoiceResult& c = results[ev.index];
        c.text += ev.text;
        c.tokens += static_cast<int>(ev.tokens.size());
        for (auto& lp : ev.logprobs) c.logprobs.push_back(std::move(lp));
        if (ev.finish) c.finish_reason = engine::finish_reason_name(*ev.finish);
      }
      if (r == engine::RequestStream::WaitResult::kFinished) break;
    }
    if (Status s = stream->status(); !s.ok())
      return send_error(res, simple_error(500, s.message(), "server_error"));
    json choices = json::array();
    int completion_tokens = 0;
    for (int i = 0; i < n_choices; ++i) {
      ChoiceResult& c = results[i];
      completion_tokens += c.tokens;
      json choice{{"index", i}, {"finish_reason", c.finish_reason}};
      if (chat) {
        choice["message"] = {{"role", "assistant"}, {"content", c.text}};
        choice["logprobs"] = parsed.logprobs ? server::chat_logprobs(c.logprobs, tok) : json(nullptr);
      } else {
        choice["text"] = c.text;
        choice["logprobs"] = parsed.logprobs ? server::completion_logprobs(c.logprobs, tok, 0) : json(nullptr);
      }
      choices.push_back(std::move(choice));
    }
    json body{{"id", id},
              {"object", chat ? "chat.completion" : "text_completion"},
              {"created", created},
              {"model", model_id},
              {"system_fingerprint", kFingerprint},
              {"choices", choices},
              {"usage", usage_json(parsed, completion_tokens, stream->cached_prompt_tokens())}};
    res.set_content(server::dump(body), "application/json");
    return;
  }

  // Streaming: one SSE event per batch of new output, as OpenAI sends them.
  struct StreamState {
    bool started = false;
    std::vector<int> completion_tokens;
    std::vector<size_t> text_offsets;
    Clock::time_point last_write = Clock::now();
  };
  auto ss = std::make_shared<StreamState>();
  ss->completion_tokens.assign(n_choices, 0);
  ss->text_offsets.assign(n_choices, 0);
  auto guard = std::make_shared<InFlight>(st);
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto chunk = [=](json choices) {
    json c{{"id", id},
           {"object", chat ? "chat.completion.chunk" : "text_completion"},
           {"created", created},
           {"model", model_id},
           {"system_fingerprint", kFingerprint},
           {"choices", std::move(choices)}};
    if (parsed.include_usage) c["usage"] = nullptr;
    return c;
  };
  auto send = [](httplib::DataSink& sink, const json& j) {
    const std::string s = "data: " + server::dump(j) + "\n\n";
    return sink.write(s.data(), s.size());
  };
  ServerState* state = &st;
  res.set_chunked_content_provider(
      "text/event-stream",
      [=, &tok](size_t, httplib::DataSink& sink) {
        if (!ss->started) {
          ss->started = true;
          if (chat) {
            json choices = json::array();
            for (int i = 0; i < n_choices; ++i)
              choices.push_back({{"index", i},
                                 {"delta", {{"role", "assistant"}, {"content", ""}}},
                                 {"logprobs", nullptr},
                                 {"finish_reason", nullptr}});
            if (!send(sink, chunk(choices))) return false;
          }
          ss->last_write = Clock::now();
        }
        std::vector<engine::ChoiceEvent> events;
        const auto r = stream->wait(events, std::chrono::milliseconds(200));
        for (auto& ev : events) {
          ss->completion_tokens[ev.index] += static_cast<int>(ev.tokens.size());
          if (ev.text.empty() && ev.logprobs.empty() && !ev.finish) continue;
          json choice{{"index", ev.index}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
          if (chat) {
            choice["delta"] = ev.text.empty() ? json::object() : json{{"content", ev.text}};
            if (parsed.logprobs && !ev.logprobs.empty()) choice["logprobs"] = server::chat_logprobs(ev.logprobs, tok);
          } else {
            choice["text"] = ev.text;
            if (parsed.logprobs && !ev.logprobs.empty())
              choice["logprobs"] = server::completion_logprobs(ev.logprobs, tok, ss->text_offsets[ev.index]);
            ss->text_offsets[ev.index] += ev.text.size();
          }
          if (ev.finish) {
            // OpenAI sends the finish reason in a chunk of its own when there is text.
            if (!ev.text.empty() || (parsed.logprobs && !ev.logprobs.empty())) {
              if (!send(sink, chunk(json::array({choice})))) return false;
              choice["logprobs"] = nullptr;
              if (chat) choice["delta"] = json::object();
              else choice["text"] = "";
            }
            choice["finish_reason"] = engine::finish_reason_name(*ev.finish);
          }
          if (!send(sink, chunk(json::array({choice})))) return false;
          ss->last_write = Clock::now();
        }
        if (r == engine::RequestStream::WaitResult::kFinished) {
          if (Status s = stream->status(); !s.ok()) {
            send(sink, server::error_body(simple_error(500, s.message(), "server_error")));
          } else if (parsed.include_usage) {
            int total = 0;
            for (int n : ss->completion_tokens) total += n;
            json u = chunk(json::array());
            u["usage"] = usage_json(parsed, total, stream->cached_prompt_tokens());
            if (!send(sink, u)) return false;
          }
          const std::string done = "data: [DONE]\n\n";
          sink.write(done.data(), done.size());
          sink.done();
          return true;
        }
        // An SSE comment now and then: a vanished client shows up as a failed write.
        if (Clock::now() - ss->last_write > std::chrono::seconds(1)) {
          static const std::string ping = ": keep-alive\n\n";
          if (!sink.write(ping.data(), ping.size())) return false;
          ss->last_write = Clock::now();
        }
        return true;
      },
      [state, stream, guard](bool) {
        // Runs when the response ends for any reason; a client gone early
        // cancels the sequences so their KV blocks are freed now.
        state->scheduler->cancel(stream);
      });
}

void handle_tokenize(ServerState& st, const httplib::Request& req, httplib::Response& res) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return send_error(res, simple_error(400, "the request body must be a JSON object", "invalid_request_error"));
  if (auto m = body.find("model"); m != body.end() && !m->is_null() &&
                                   (!m->is_string() || m->get<std::string>() != st.mc.model_id))
    return send_error(res, ApiError{.http_status = 404, .message = "The model `" + m->dump() + "` does not exist",
                                    .type = "invalid_request_error", .param = "model", .code = "model_not_found"});
  const json* text = nullptr;
  for (const char* k : {"prompt", "content"})
    if (auto it = body.find(k); it != body.end()) text = &*it;
  if (text == nullptr || !text->is_string())
    return send_error(res, ApiError{.http_status = 400, .message = "prompt must be a string",
                                    .type = "invalid_request_error", .param = "prompt", .code = ""});
  bool add_special = true;
  for (const char* k : {"add_special_tokens", "add_special"})
    if (auto it = body.find(k); it != body.end() && it->is_boolean()) add_special = it->get<bool>();
  const Tokenizer& tok = st.model->tokenizer();
  auto ids = tok.encode(text->get<std::string>(),
                        {.add_bos = add_special ? tok.add_bos_default() : false, .parse_special = false, .add_eos = {}});
  res.set_content(server::dump(json{{"tokens", ids},
                                    {"count", ids.size()},
                                    {"max_model_len", st.mc.max_context}}),
                  "application/json");
}

void handle_detokenize(ServerState& st, const httplib::Request& req, httplib::Response& res) {
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object())
    return send_error(res, simple_error(400, "the request body must be a JSON object", "invalid_request_error"));
  auto it = body.find("tokens");
  const Tokenizer& tok = st.model->tokenizer();
  std::vector<int32_t> ids;
  bool ok = it != body.end() && it->is_array();
  if (ok)
    for (const auto& t : *it) {
      if (!(t.is_number_integer() || t.is_number_unsigned()) || t.get<int64_t>() < 0 ||
          t.get<int64_t>() >= tok.n_vocab()) {
        ok = false;
        break;
      }
      ids.push_back(static_cast<int32_t>(t.get<int64_t>()));
    }
  if (!ok)
    return send_error(res, ApiError{.http_status = 400,
                                    .message = "tokens must be an array of token ids inside the vocabulary",
                                    .type = "invalid_request_error", .param = "tokens", .code = ""});
  res.set_content(server::dump(json{{"prompt", tok.decode(ids)}}), "application/json");
}

bool is_open_path(const std::string& path) {
  return path == "/health" || path == "/ready" || path == "/metrics";
}

}  // namespace

Status run_server(const ServerOptions& opt) {
  if (opt.parallel < 1 || opt.parallel > 1024) return invalid_argument("--parallel must be in [1, 1024]");
  if (opt.max_queue < 0) return invalid_argument("--max-queue must be >= 0");
  if (opt.batch_tokens < 1) return invalid_argument("--batch must be >= 1");
  if (opt.kv_blocks < 0) return invalid_argument("--kv-blocks must be >= 0");
  // Signals are taken by one thread with sigwait, so every other thread
  // (compute threads started by the model, httplib workers, the scheduler)
  // must be created with them blocked.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto st = std::make_unique<ServerState>();
  st->options = opt;
  FRUGAL_ASSIGN_OR_RETURN(st->model, Model::load(opt.model_path, {.n_threads = opt.threads, .fine_activations = opt.fine_activations}));
  const ModelInfo& info = st->model->info();
  const int ctx_tokens = opt.ctx > 0 ? opt.ctx : std::min(info.n_ctx_train > 0 ? info.n_ctx_train : 4096, 4096);
  FRUGAL_ASSIGN_OR_RETURN(st->ctx, InferenceContext::create(*st->model, {.max_sequences = opt.parallel,
                                                                         .max_context = ctx_tokens,
                                                                         .max_batch_tokens = opt.batch_tokens,
                                                                         .kv_block_tokens = 16,
                                                                         .kv_blocks = opt.kv_blocks}));
  // One sequence at full context must always fit, or a request could wait forever.
  if (const int per_seq = (ctx_tokens + 15) / 16; opt.kv_blocks > 0 && opt.kv_blocks < per_seq)
    return invalid_argument("--kv-blocks " + std::to_string(opt.kv_blocks) + " cannot hold one context of " +
                            std::to_string(ctx_tokens) + " tokens (needs " + std::to_string(per_seq) + ")");
  std::string model_id = opt.model_alias;
  if (model_id.empty()) {
    model_id = std::filesystem::path(opt.model_path).filename().string();
    if (model_id.size() > 5 && model_id.ends_with(".gguf")) model_id.resize(model_id.size() - 5);
  }
  st->metrics = std::make_unique<engine::EngineMetrics>(model_id);
  st->scheduler = std::make_unique<engine::Scheduler>(*st->model, *st->ctx, *st->metrics,
                                                      engine::SchedulerOptions{.max_waiting = opt.max_queue});
  const Tokenizer& tok = st->model->tokenizer();
  st->mc = server::ModelContext{.model_id = model_id, .tokenizer = &tok, .chat_template = nullptr,
                                .chat_template_error = "", .max_context = ctx_tokens,
                                .max_choices = opt.parallel};
  if (auto src = tok.chat_template(); src.has_value()) {
    auto t = ChatTemplate::parse(*src);
    if (t.ok()) {
      st->chat_template = *t;
      st->mc.chat_template = &*st->chat_template;
    } else {
      st->mc.chat_template_error = t.status().message();
    }
  } else {
    st->mc.chat_template_error = "no tokenizer.chat_template in the model";
  }

  ServerState& s = *st;
  httplib::Server http;
  const int http_threads = opt.http_threads > 0 ? opt.http_threads : opt.parallel + opt.max_queue + 16;
  http.new_task_queue = [http_threads] { return new httplib::ThreadPool(http_threads); };
  http.set_payload_max_length(opt.max_body_bytes);
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);
  http.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) {
    if (!s.options.api_key.empty() && !is_open_path(req.path)) {
      const std::string auth = req.get_header_value("Authorization");
      const std::string prefix = "Bearer ";
      const bool ok = auth.size() > prefix.size() && auth.compare(0, prefix.size(), prefix) == 0 &&
                      server::keys_equal(auth.substr(prefix.size()), s.options.api_key);
      if (!ok) {
        send_error(res, simple_error(401, auth.empty() ? "Missing API key: send 'Authorization: Bearer KEY'"
                                                       : "Incorrect API key provided",
                                     "invalid_request_error", "invalid_api_key"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (s.draining && !is_open_path(req.path)) {
      send_error(res, simple_error(503, "the server is shutting down", "server_error", "shutting_down"));
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404)
      send_error(res, simple_error(404, "Unknown path " + req.path, "invalid_request_error", "not_found"));
    else if (res.status == 413)
      send_error(res, simple_error(413, "the request body is larger than the server accepts",
                                   "invalid_request_error", "payload_too_large"));
    else
      send_error(res, simple_error(res.status, "HTTP error " + std::to_string(res.status),
                                   res.status >= 500 ? "server_error" : "invalid_request_error"));
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, simple_error(500, what, "server_error"));
  });
  if (opt.verbose)
    http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "%s %s -> %d\n", req.method.c_str(), req.path.c_str(), res.status);
    });

  http.Post("/v1/chat/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_generation(s, req, res, Endpoint::kChat);
  });
  http.Post("/v1/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_generation(s, req, res, Endpoint::kCompletions);
  });
  http.Get("/v1/models", [&s](const httplib::Request&, httplib::Response& res) {
    json m{{"id", s.mc.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "frugal"},
           {"max_model_len", s.mc.max_context}};
    res.set_content(server::dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  http.Get("/ready", [&s](const httplib::Request&, httplib::Response& res) {
    if (s.draining) {
      res.status = 503;
      res.set_content(R"({"status":"draining"})", "application/json");
    } else {
      res.set_content(R"({"status":"ready"})", "application/json");
    }
  });
  http.Get("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
    res.set_content(s.metrics->render_prometheus(), "text/plain; version=0.0.4");
  });
  http.Post("/tokenize", [&s](const httplib::Request& req, httplib::Response& res) { handle_tokenize(s, req, res); });
  http.Post("/detokenize", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_detokenize(s, req, res);
  });

  int port = opt.port;
  if (port == 0) {
    port = http.bind_to_any_port(opt.host);
    if (port <= 0) return io_error("cannot bind to " + opt.host);
  } else if (!http.bind_to_port(opt.host, port)) {
    return io_error("cannot bind to " + opt.host + ":" + std::to_string(port));
  }
  s.scheduler->start();
  std::fprintf(stderr, "frugal serve: model '%s' (%s, ctx %d x %d sequences) listening on http://%s:%d\n",
               model_id.c_str(), info.architecture.c_str(), ctx_tokens, opt.parallel, opt.host.c_str(), port);
  std::printf("listening on http://%s:%d\n", opt.host.c_str(), port);
  std::fflush(stdout);

  std::atomic<bool> finished{false};
  std::thread signal_thread([&] {
    timespec tick{0, 200'000'000};
    while (!finished) {
      if (sigtimedwait(&sigs, nullptr, &tick) < 0) continue;
      // Stop taking work (503), let in-flight requests finish, then stop.
      s.draining = true;
      std::fprintf(stderr, "frugal serve: draining %d in-flight requests\n", s.in_flight.load());
      const auto deadline = Clock::now() + std::chrono::duration<double>(s.options.drain_timeout_s);
      while (Clock::now() < deadline && (s.in_flight > 0 || s.scheduler->active_requests() > 0))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      http.stop();
      return;
    }
  });
  const bool listened = http.listen_after_bind();
  finished = true;
  signal_thread.join();
  s.scheduler->stop();
  if (!listened && !s.draining) return io_error("the HTTP server stopped unexpectedly");
  std::fprintf(stderr, "frugal serve: stopped\n");
  return Status::Ok();
}

}  // namespace frugal
