// The Jinja engine against outputs of the real Jinja2 (engine.json, written
// by chat_templates/generate.py), plus the sandbox: limits, refused tags,
// and hostile input that must fail cleanly instead of crashing or hanging.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tokenizer/jinja/template.h"

namespace frugal::jinja {
namespace {

const std::filesystem::path kFixtures = std::filesystem::path(__FILE__).parent_path() / "chat_templates";

nlohmann::ordered_json load_json(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::ordered_json::parse(ss.str());
}

// The moment generate.py pins strftime_now() to: 2025-03-09 14:30:05.
std::tm pinned_now() {
  std::tm tm{};
  tm.tm_year = 2025 - 1900;
  tm.tm_mon = 2;
  tm.tm_mday = 9;
  tm.tm_hour = 14;
  tm.tm_min = 30;
  tm.tm_sec = 5;
  tm.tm_wday = 0;  // Sunday
  tm.tm_yday = 67;
  return tm;
}

Expected<std::string> render(std::string_view source, const nlohmann::ordered_json& variables = nlohmann::ordered_json::object(),
                             RenderOptions options = {}) {
  FRUGAL_ASSIGN_OR_RETURN(Template t, Template::compile(source));
  FRUGAL_ASSIGN_OR_RETURN(Value context, value_from_json(variables));
  if (!options.now) options.now = pinned_now();
  return t.render(context, options);
}

TEST(JinjaEngine, MatchesJinja2OnEngineFixtures) {
  const auto fixtures = load_json(kFixtures / "engine.json");
  const auto& cases = fixtures.at("cases");
  ASSERT_GE(cases.size(), 70u);
  int rendered = 0, failed_as_expected = 0;
  for (const auto& c : cases) {
    const std::string name = c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    auto out = render(c.at("source").get<std::string>(), c.at("variables"));
    if (c.contains("expected")) {
      ASSERT_TRUE(out.ok()) << name << ": " << out.status().to_string();
      EXPECT_EQ(*out, c.at("expected").get<std::string>()) << name;
      ++rendered;
    } else {
      EXPECT_FALSE(out.ok()) << name << " rendered " << (out.ok() ? *out : "") << " but Jinja2 failed with "
                             << c.at("error").get<std::string>();
      if (!out.ok()) {
        EXPECT_NE(out.status().code(), ErrorCode::kInternal) << name;
      }
      ++failed_as_expected;
    }
  }
  EXPECT_GE(rendered, 60);
  EXPECT_GE(failed_as_expected, 10);
}

TEST(JinjaEngine, SyntaxErrorsMatchJinja2) {
  const auto fixtures = load_json(kFixtures / "engine.json");
  const auto& cases = fixtures.at("syntax_errors");
  ASSERT_GE(cases.size(), 8u);
  for (const auto& c : cases) {
    auto t = Template::compile(c.at("source").get<std::string>());
    EXPECT_FALSE(t.ok()) << c.at("name").get<std::string>() << " compiled";
    if (!t.ok()) {
      EXPECT_NE(t.status().message().find("syntax error"), std::string::npos) << t.status().message();
    }
  }
}

TEST(JinjaEngine, RaiseExceptionCarriesTheTemplatesMessage) {
  auto out = render("{{ raise_exception('Conversation roles must alternate') }}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("Conversation roles must alternate"), std::string::npos);
  EXPECT_NE(out.status().message().find("line 1"), std::string::npos) << out.status().message();
}

TEST(JinjaEngine, ErrorsNameTheLine) {
  auto out = render("line one\n{% for m in messages %}\n{{ m.content + 1 }}\n{% endfor %}",
                    {{"messages", {{{"content", "x"}}}}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("line 3"), std::string::npos) << out.status().message();
  auto syntax = Template::compile("ok\n\n{% if x %}\n{{ 1 + }}\n{% endif %}");
  ASSERT_FALSE(syntax.ok());
  EXPECT_NE(syntax.status().message().find("line 4"), std::string::npos) << syntax.status().message();
}

TEST(JinjaEngine, GenerationTagRendersItsBody) {
  // Hugging Face registers {% generation %} to mark assistant text.
  auto out = render("{% for m in ['a', 'b'] %}{% generation %}<{{ m }}>{% endgeneration %}{% endfor %}");
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out, "<a><b>");
}

TEST(JinjaSandbox, TagsThatLoadOtherTemplatesAreRefused) {
  for (const char* src : {"{% include 'x.jinja' %}", "{% import 'x.jinja' as m %}", "{% from 'x' import y %}",
                          "{% extends 'base.jinja' %}"}) {
    auto t = Template::compile(src);
    ASSERT_FALSE(t.ok()) << src;
    EXPECT_NE(t.status().message().find("not allowed"), std::string::npos) << t.status().message();
  }
}

TEST(JinjaSandbox, PrivateAttributesAreHidden) {
  auto out = render("[{{ ''.__class__ }}][{{ d._secret }}][{{ d.__len__ }}]", {{"d", {{"_secret", 1}}}});
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  EXPECT_EQ(*out, "[][][]");
}

TEST(JinjaSandbox, TemplatesCannotModifyTheirInputs) {
  for (const char* src : {"{{ messages.append(1) }}", "{{ messages.pop() }}", "{{ d.update({'a': 2}) }}",
                          "{{ d.clear() }}", "{{ messages.sort() }}"}) {
    auto out = render(src, {{"messages", {1, 2}}, {"d", {{"a", 1}}}});
    ASSERT_FALSE(out.ok()) << src;
    EXPECT_NE(out.status().message().find("unsafe"), std::string::npos) << out.status().message();
  }
}

// Every limit below must trip fast: the tests bound the time too.
void expect_limit(std::string_view source, std::string_view what, RenderOptions options = {}) {
  const auto start = std::chrono::steady_clock::now();
  auto out = render(source, nlohmann::ordered_json::object(), options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(out.ok()) << source << " rendered " << out->size() << " bytes";
  EXPECT_EQ(out.status().code(), ErrorCode::kResourceExhausted) << out.status().to_string();
  EXPECT_NE(out.status().message().find(what), std::string::npos) << out.status().message();
  EXPECT_LT(seconds, 5.0) << source;
}

TEST(JinjaLimits, NestedLoopsHitTheIterationLimit) {
  expect_limit("{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
               "loop iteration limit");
}

TEST(JinjaLimits, ExpensiveLoopsHitTheStepLimit) {
  RenderOptions o;
  o.limits.max_steps = 20'000;
  expect_limit("{% for i in range(50000) %}{% set x = i * 2 + 1 %}{% endfor %}", "step limit", o);
}

TEST(JinjaLimits, HugeOutputHitsTheOutputLimit) {
  expect_limit("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "output size limit");
}

TEST(JinjaLimits, OutputLimitAlsoCoversCapturedBlocks) {
  expect_limit("{% set s %}{% for i in range(100000) %}{{ 'y' * 500 }}{% endfor %}{% endset %}{{ s|length }}",
               "output size limit");
}

TEST(JinjaLimits, StringDoublingHitsTheStringLimit) {
  expect_limit("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
               "bytes exceeds the limit");
  expect_limit("{{ 'ab' * 1000000000 }}", "bytes exceeds the limit");
}

TEST(JinjaLimits, HugeListsAreRefusedBeforeBeingBuilt) {
  expect_limit("{{ range(1000000000000)|length }}", "items exceeds the limit");
  expect_limit("{{ ([1] * 1000000000)|length }}", "items exceeds the limit");
  expect_limit("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
               "items exceeds the limit");
}

TEST(JinjaLimits, DeepValuesAndRecursionAreBounded) {
  expect_limit("{% set ns = namespace(l=[]) %}{% for i in range(5000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}",
               "nested deeper than");
  expect_limit("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "macro calls nested deeper");
}

TEST(JinjaLimits, NamespaceCyclesAreRefused) {
  auto out = render("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("cannot hold a namespace"), std::string::npos) << out.status().message();
}

TEST(JinjaLimits, DeeplyNestedSourceFailsToCompile) {
  const std::string parens = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_FALSE(Template::compile(parens).ok());
  std::string nots = "{{ ";
  for (int i = 0; i < 5000; ++i) nots += "not ";
  nots += "x }}";
  EXPECT_FALSE(Template::compile(nots).ok());
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if x %}";
  for (int i = 0; i < 5000; ++i) ifs += "{% endif %}";
  EXPECT_FALSE(Template::compile(ifs).ok());
  std::string minus = "{{ ";
  for (int i = 0; i < 5000; ++i) minus += "-";
  minus += "1 }}";
  EXPECT_FALSE(Template::compile(minus).ok());
  // Within the limit, nesting works.
  auto ok = render("{{ " + std::string(50, '(') + "7" + std::string(50, ')') + " }}");
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(*ok, "7");
}

TEST(JinjaLimits, DeeplyNestedJsonIsRefused) {
  std::string deep = "{\"x\": " + std::string(1000, '[') + std::string(1000, ']') + "}";
  auto j = nlohmann::ordered_json::parse(deep);
  EXPECT_FALSE(value_from_json(j).ok());
}

// Every prefix of a real template, and byte-level damage to it, must either
// compile and render or fail with a Status: never crash or hang.
TEST(JinjaRobustness, TruncatedAndDamagedTemplatesFailCleanly) {
  std::ifstream in(kFixtures / "templates" / "llama-3.1-instruct.jinja", std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string source = ss.str();
  ASSERT_GT(source.size(), 4000u);
  const nlohmann::ordered_json vars = {{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                       {"add_generation_prompt", true}, {"bos_token", "<s>"}};
  int compiled = 0;
  for (size_t n = 0; n <= source.size(); n += 3) {
    auto t = Template::compile(std::string_view(source).substr(0, n));
    if (!t.ok()) continue;
    ++compiled;
    auto ctx = value_from_json(vars);
    ASSERT_TRUE(ctx.ok());
    (void)t->render(*ctx);
  }
  EXPECT_GT(compiled, 10);
  uint32_t rng = 12345;
  for (int round = 0; round < 2000; ++round) {
    std::string damaged = source;
    for (int k = 0; k < 4; ++k) {
      rng = rng * 1664525u + 1013904223u;
      const size_t at = rng % damaged.size();
      rng = rng * 1664525u + 1013904223u;
      damaged[at] = "{}%#-+()[]'\"|.~ \nax0"[rng % 20];
    }
    auto t = Template::compile(damaged);
    if (!t.ok()) continue;
    auto ctx = value_from_json(vars);
    ASSERT_TRUE(ctx.ok());
    (void)t->render(*ctx);
  }
}

TEST(JinjaValues, PythonFloatRepr) {
  EXPECT_EQ(python_float_repr(1.0), "1.0");
  EXPECT_EQ(python_float_repr(0.1), "0.1");
  EXPECT_EQ(python_float_repr(-2.5), "-2.5");
  EXPECT_EQ(python_float_repr(1e16), "1e+16");
  EXPECT_EQ(python_float_repr(123456789012345.0), "123456789012345.0");
  EXPECT_EQ(python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(python_float_repr(0.00001), "1e-05");
  EXPECT_EQ(python_float_repr(1.5e300), "1.5e+300");
}

}  // namespace
}  // namespace frugal::jinja
