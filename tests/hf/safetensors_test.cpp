// The safetensors reader: valid single and sharded checkpoints in every
// weight dtype, and a corpus of malformed files, each of which must be
// rejected with an error naming the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/half.h"
#include "formats/safetensors/safetensors.h"

namespace frugal {
namespace {

std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data, uint64_t len_override = 0,
                               bool override_len = false) {
  std::vector<uint8_t> out(8);
  const uint64_t len = override_len ? len_override : header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  auto f = st::SafetensorsFile::parse(bytes.data(), bytes.size());
  if (f.ok()) return "<accepted>";
  return f.status().message();
}

class ScratchDir {
 public:
  ScratchDir() {
    path_ = std::filesystem::temp_directory_path() / ("frugal-st-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() { std::filesystem::remove_all(path_); }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    const std::string p = (path_ / name).string();
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return p;
  }
  std::string write(const std::string& name, const std::string& text) const {
    return write(name, std::vector<uint8_t>(text.begin(), text.end()));
  }
  std::string dir() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(Safetensors, ReadsEveryWeightDtype) {
  // Three tensors, one per dtype, holding 1.5, -2, 0.25 and 3.
  std::vector<uint8_t> data;
  const float f32[2] = {1.5f, -2.0f};
  data.insert(data.end(), reinterpret_cast<const uint8_t*>(f32), reinterpret_cast<const uint8_t*>(f32) + 8);
  for (float v : {0.25f, 3.0f}) {
    const uint16_t h = f32_to_f16(v);
    data.push_back(h & 0xff);
    data.push_back(h >> 8);
  }
  for (float v : {0.25f, 3.0f}) {
    const uint16_t h = f32_to_bf16(v);
    data.push_back(h & 0xff);
    data.push_back(h >> 8);
  }
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F16","shape":[1,2],"data_offsets":[8,12]},"c":{"dtype":"BF16","shape":[2],"data_offsets":[12,16]}})";
  const auto bytes = make_file(header, data);
  auto f = st::SafetensorsFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
  ASSERT_EQ((*f)->tensors().size(), 3u);
  float out[2];
  ASSERT_TRUE(st::read_as_f32(*(*f)->find("a"), 0, 2, out).ok());
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.0f);
  ASSERT_TRUE(st::read_as_f32(*(*f)->find("b"), 0, 2, out).ok());
  EXPECT_EQ(out[0], 0.25f);
  EXPECT_EQ(out[1], 3.0f);
  EXPECT_EQ((*f)->find("b")->shape, (std::vector<int64_t>{1, 2}));
  ASSERT_TRUE(st::read_as_f32(*(*f)->find("c"), 1, 1, out).ok());
  EXPECT_EQ(out[0], 3.0f);
  EXPECT_FALSE(st::read_as_f32(*(*f)->find("c"), 1, 2, out).ok()) << "range past the tensor";
}

TEST(Safetensors, IntegerTensorsAreReadButNotConverted) {
  const auto bytes = make_file(R"({"i":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", {1, 0, 0, 0});
  auto f = st::SafetensorsFile::parse(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  float out;
  const Status s = st::read_as_f32(*(*f)->find("i"), 0, 1, &out);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("I32"), std::string::npos);
}

struct MalformedCase {
  const char* name;
  std::vector<uint8_t> bytes;
  const char* expected;  // a substring of the error
};

std::vector<MalformedCase> malformed_corpus() {
  const std::vector<uint8_t> four(4, 0), eight(8, 0);
  auto one = [](const std::string& entry, const std::vector<uint8_t>& data) {
    return make_file("{\"t\":" + entry + "}", data);
  };
  return {
      {"shorter than the length field", {1, 2, 3}, "too short"},
      {"header length over 100 MB", make_file("{}", {}, 200ull << 20, true), "exceeds the limit"},
      {"header length past the end", make_file("{}", {}, 4096, true), "past the end"},
      {"header length zero", make_file("", {}), "cannot hold"},
      {"header not JSON", make_file("{\"t\": [", four), "not valid JSON"},
      {"header a JSON array", make_file("[1, 2]", {}), "not an object"},
      {"header invalid UTF-8", make_file("{\"\xff\xfe\":1}", {}), "not valid JSON"},
      {"duplicate tensor name",
       make_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four),
       "duplicate key 't'"},
      {"entry not an object", one("3", {}), "entry is not an object"},
      {"missing dtype", one(R"({"shape":[1],"data_offsets":[0,4]})", four), "needs dtype"},
      {"unknown dtype", one(R"({"dtype":"F12","shape":[1],"data_offsets":[0,4]})", four), "unknown dtype 'F12'"},
      {"shape not an array", one(R"({"dtype":"F32","shape":4,"data_offsets":[0,4]})", four), "shape is not an array"},
      {"negative dimension", one(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", four), "non-negative integers"},
      {"fractional dimension", one(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", four), "non-negative integers"},
      {"too many dimensions", one(R"({"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]})", four),
       "dimensions"},
      {"element count overflows",
       one(R"({"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]})", four), "overflows"},
      {"byte size overflows", one(R"({"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]})", four),
       "overflows"},
      {"offsets disagree with dtype x shape", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,4]})", four),
       "need 8"},
      {"offsets reversed", one(R"({"dtype":"F32","shape":[1],"data_offsets":[4,0]})", four), "is after end"},
      {"offsets not a pair", one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4,8]})", four), "two integers"},
      {"offsets past the data", one(R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})", four), "past the data section"},
      {"overlapping tensors",
       make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "overlaps"},
      {"gap between tensors",
       make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 std::vector<uint8_t>(12, 0)),
       "unused bytes"},
      {"trailing bytes", one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})", eight), "trailing bytes"},
      {"metadata not an object", make_file(R"({"__metadata__":[1]})", {}), "__metadata__ is not an object"},
      {"metadata value not a string", make_file(R"({"__metadata__":{"format":1}})", {}), "is not a string"},
      {"empty tensor name", make_file(R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", four), "empty name"},
  };
}

TEST(Safetensors, MalformedFilesGiveClearErrors) {
  const auto corpus = malformed_corpus();
  ASSERT_GE(corpus.size(), 15u);
  for (const auto& c : corpus) {
    const std::string err = parse_error(c.bytes);
    EXPECT_NE(err.find(c.expected), std::string::npos) << c.name << ": got \"" << err << "\"";
  }
}

TEST(Safetensors, TruncatedValidFileIsRejectedAtEveryLength) {
  const auto good = make_file(R"({"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}})", std::vector<uint8_t>(8, 1));
  ASSERT_EQ(parse_error(good), "<accepted>");
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    EXPECT_NE(parse_error(cut), "<accepted>") << "length " << n;
  }
}

TEST(Safetensors, ShardedCheckpointFollowsTheIndex) {
  ScratchDir d;
  d.write("s1.safetensors", make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", {0, 0, 128, 63}));
  d.write("s2.safetensors", make_file(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", {0, 0, 0, 64}));
  d.write("model.safetensors.index.json", std::string(R"({"metadata":{},"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})"));
  auto ck = st::SafetensorsCheckpoint::open_dir(d.dir());
  ASSERT_TRUE(ck.ok()) << ck.status().to_string();
  EXPECT_EQ((*ck)->shard_count(), 2u);
  float v = 0;
  ASSERT_NE((*ck)->find("b"), nullptr);
  ASSERT_TRUE(st::read_as_f32(*(*ck)->find("b"), 0, 1, &v).ok());
  EXPECT_EQ(v, 2.0f);
  ASSERT_NE((*ck)->find("a"), nullptr);
  ASSERT_TRUE(st::read_as_f32(*(*ck)->find("a"), 0, 1, &v).ok());
  EXPECT_EQ(v, 1.0f);
}

TEST(Safetensors, BadIndexesAreRejected) {
  const auto shard = make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", {0, 0, 128, 63});
  struct Case {
    const char* index;
    const char* expected;
  } cases[] = {
      {R"({"weight_map":{"a":"../s1.safetensors"}})", "not a plain file name"},
      {R"({"weight_map":{"a":"s1.safetensors","z":"s1.safetensors"}})", "does not contain it"},
      {R"({"weight_map":{}})", ""},  // s1 unlisted: nothing opened, then nothing to check
      {R"({"weight_map":[1]})", "missing weight_map"},
      {R"({"weight_map":{"a":7}})", "is not a string"},
      {R"(not json)", "not a JSON object"},
      {R"({"weight_map":{"a":"missing.safetensors"}})", "missing.safetensors"},
  };
  for (const auto& c : cases) {
    ScratchDir d;
    d.write("s1.safetensors", shard);
    d.write("model.safetensors.index.json", std::string(c.index));
    auto ck = st::SafetensorsCheckpoint::open_dir(d.dir());
    if (std::string(c.expected).empty()) continue;
    ASSERT_FALSE(ck.ok()) << c.index;
    EXPECT_NE(ck.status().message().find(c.expected), std::string::npos) << c.index << ": " << ck.status().message();
  }
  // A shard holding a tensor that the index does not list.
  ScratchDir d;
  d.write("s1.safetensors",
          make_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                    std::vector<uint8_t>(8, 0)));
  d.write("model.safetensors.index.json", std::string(R"({"weight_map":{"a":"s1.safetensors"}})"));
  auto ck = st::SafetensorsCheckpoint::open_dir(d.dir());
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.status().message().find("not listed in the index"), std::string::npos) << ck.status().message();
}

}  // namespace
}  // namespace frugal
