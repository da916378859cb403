// Malformed-file corpus for the GGUF reader. Each case starts from a valid
// file built with GgufWriter, changes one field (located through the writer's
// GgufLayout) and checks that the reader refuses it with a message naming
// the problem. Parsing runs from an exactly-sized heap copy so that any read
// past the end is caught by the sanitizer build. Every case also goes through
// `frugal inspect` to check the CLI exits cleanly with an error.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"
#include "gguf_test_util.h"

namespace frugal {
namespace {

struct Base {
  std::vector<uint8_t> bytes;
  GgufLayout layout;

  const GgufKvLayout& kv(const std::string& key) const {
    for (const auto& k : layout.kvs)
      if (k.key == key) return k;
    ADD_FAILURE() << "no key " << key;
    return layout.kvs.front();
  }
  const GgufTensorLayout& tensor(const std::string& name) const {
    for (const auto& t : layout.tensors)
      if (t.name == name) return t;
    ADD_FAILURE() << "no tensor " << name;
    return layout.tensors.front();
  }
};

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 13 + 1);
  return v;
}

// The valid file every case corrupts: a few values of each kind (string,
// bool, u32, string array, f32 array, alignment) and three tensors.
Base make_base() {
  GgufWriter w;
  EXPECT_TRUE(w.add_string("general.architecture", "llama").ok());
  EXPECT_TRUE(w.set_alignment(32).ok());
  EXPECT_TRUE(w.add_bool("test.flag", true).ok());
  EXPECT_TRUE(w.add_string("test.name", "abcdef").ok());
  EXPECT_TRUE(w.add_u32("test.count", 7).ok());
  const std::vector<std::string> toks{"a", "bc", "def"};
  EXPECT_TRUE(w.add_array_string("test.tokens", toks).ok());
  const std::vector<float> scores{0.5f, -1.0f, 2.0f};
  EXPECT_TRUE(w.add_array_f32("test.scores", scores).ok());
  const bool bools[] = {false, true, true};
  EXPECT_TRUE(w.add_array_bool("test.bools", bools).ok());
  const std::vector<int64_t> d_a{8, 2}, d_b{8}, d_q{32, 2};
  EXPECT_TRUE(w.add_tensor("a.weight", d_a, TensorType::kF32, pattern(64)).ok());
  EXPECT_TRUE(w.add_tensor("b.weight", d_b, TensorType::kF32, pattern(32)).ok());
  EXPECT_TRUE(w.add_tensor("q.weight", d_q, TensorType::kQ8_0, pattern(68)).ok());
  Base b;
  auto bytes = w.write_to_buffer(&b.layout);
  EXPECT_TRUE(bytes.ok()) << bytes.status().to_string();
  if (bytes.ok()) b.bytes = std::move(bytes).value();
  return b;
}

template <class T>
void put(std::vector<uint8_t>& v, uint64_t at, T x) {
  ASSERT_LE(at + sizeof(T), v.size());
  std::memcpy(v.data() + at, &x, sizeof(T));
}

// Parses from an exact-size heap copy; returns the status (ok or not).
Status parse_status(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() + (bytes.empty() ? 1 : 0)]);
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  auto f = GgufFile::parse(copy.get(), bytes.size());
  return f.ok() ? Status::Ok() : f.status();
}

struct Case {
  std::string name;
  std::function<std::vector<uint8_t>(const Base&)> make;
  std::string needle;  // must appear in the error message
};

constexpr uint64_t k2p63 = 1ull << 63;
constexpr uint64_t k2p40 = 1ull << 40;

// Returns the base bytes with one value of type T written at `at(base)`.
template <class T>
std::function<std::vector<uint8_t>(const Base&)> patch(std::function<uint64_t(const Base&)> at, T x) {
  return [at, x](const Base& b) {
    auto v = b.bytes;
    put<T>(v, at(b), x);
    return v;
  };
}

// Hand-made file: a header followed by one key whose value is `depth`
// arrays nested in each other (each holding one element), then a u8.
std::vector<uint8_t> nested_arrays(int depth, uint64_t outer_count) {
  std::vector<uint8_t> v;
  auto u32 = [&](uint32_t x) { v.insert(v.end(), reinterpret_cast<uint8_t*>(&x), reinterpret_cast<uint8_t*>(&x) + 4); };
  auto u64 = [&](uint64_t x) { v.insert(v.end(), reinterpret_cast<uint8_t*>(&x), reinterpret_cast<uint8_t*>(&x) + 8); };
  u32(0x46554747);
  u32(3);
  u64(0);  // tensors
  u64(1);  // kvs
  u64(6);
  for (char c : std::string("nested")) v.push_back(static_cast<uint8_t>(c));
  u32(9);  // array
  for (int d = 0; d < depth; ++d) {
    u32(d + 1 < depth ? 9 : 0);  // element type: array, innermost u8
    u64(d == 0 ? outer_count : 1);
  }
  v.push_back(42);
  return v;
}

std::vector<Case> corpus() {
  using B = const Base&;
  std::vector<Case> c;
  auto kv_value = [](const char* key, uint64_t plus) {
    return [key, plus](B b) { return b.kv(key).value_offset + plus; };
  };
  auto kv_key = [](const char* key, uint64_t plus) {
    return [key, plus](B b) { return b.kv(key).key_offset + plus; };
  };
  auto kv_type = [](const char* key) { return [key](B b) { return b.kv(key).type_offset; }; };
  auto t_ndims = [](const char* n) { return [n](B b) { return b.tensor(n).n_dims_offset; }; };
  auto t_dim = [](const char* n, int d) { return [n, d](B b) { return b.tensor(n).dims_offset + 8 * d; }; };
  auto t_type = [](const char* n) { return [n](B b) { return b.tensor(n).type_offset; }; };
  auto t_off = [](const char* n) { return [n](B b) { return b.tensor(n).offset_field_offset; }; };
  auto t_name = [](const char* n, uint64_t plus) { return [n, plus](B b) { return b.tensor(n).name_offset + plus; }; };
  auto at = [](uint64_t x) { return [x](B) { return x; }; };

  // Header.
  c.push_back({"bad_magic", patch<uint32_t>(at(0), 0x46554746), "not a GGUF file (bad magic)"});
  c.push_back({"version_1", patch<uint32_t>(at(4), 1), "GGUF version 1 (supported: 2, 3)"});
  c.push_back({"version_4", patch<uint32_t>(at(4), 4), "GGUF version 4"});
  c.push_back({"tensor_count_2p63", patch<uint64_t>(at(8), k2p63), "tensor count 9223372036854775808 is impossible"});
  c.push_back({"tensor_count_2p40", patch<uint64_t>(at(8), k2p40), "tensor count 1099511627776 is impossible"});
  c.push_back({"kv_count_2p63", patch<uint64_t>(at(16), k2p63), "metadata count 9223372036854775808 is impossible"});
  c.push_back({"kv_count_2p40", patch<uint64_t>(at(16), k2p40), "metadata count 1099511627776 is impossible"});
  // Keys.
  c.push_back({"key_length_2p63", patch<uint64_t>(kv_key("test.flag", 0), k2p63), "metadata key at offset"});
  c.push_back({"key_length_2p40", patch<uint64_t>(kv_key("test.flag", 0), k2p40), "exceeds the limit of 65535"});
  c.push_back({"empty_key", patch<uint64_t>(kv_key("test.flag", 0), 0), "empty key"});
  c.push_back({"key_invalid_utf8_byte", patch<uint8_t>(kv_key("test.flag", 8 + 5), 0xff), "key is not valid UTF-8"});
  // U+D800 encoded in UTF-8 form: a surrogate, never valid.
  c.push_back({"key_utf8_surrogate", [](B b) {
                 auto v = b.bytes;
                 const uint64_t p = b.kv("test.flag").key_offset + 8 + 5;
                 v[p] = 0xed, v[p + 1] = 0xa0, v[p + 2] = 0x80;
                 return v;
               },
               "key is not valid UTF-8"});
  // "test.name" -> "test.flag": same length, so only the key changes.
  c.push_back({"duplicate_key", [](B b) {
                 auto v = b.bytes;
                 std::memcpy(v.data() + b.kv("test.name").key_offset + 8 + 5, "flag", 4);
                 return v;
               },
               "duplicate key 'test.flag'"});
  // Value types.
  c.push_back({"unknown_value_type_13", patch<uint32_t>(kv_type("test.count"), 13), "'test.count': unknown value type 13"});
  c.push_back({"unknown_value_type_max", patch<uint32_t>(kv_type("test.count"), 0xffffffffu), "unknown value type 4294967295"});
  c.push_back({"bool_value_2", patch<uint8_t>(kv_value("test.flag", 0), 2), "bool value at offset"});
  c.push_back({"bool_array_element_2", patch<uint8_t>(kv_value("test.bools", 12 + 2), 2),
               "'test.bools': bool array at offset"});
  c.push_back({"string_length_2p63", patch<uint64_t>(kv_value("test.name", 0), k2p63), "'test.name': string value at offset"});
  c.push_back({"string_length_2p40", patch<uint64_t>(kv_value("test.name", 0), k2p40), "length 1099511627776 exceeds the limit"});
  c.push_back({"string_past_end", [](B b) {
                 auto v = b.bytes;
                 put<uint64_t>(v, b.kv("test.name").value_offset, v.size());
                 return v;
               },
               "truncated file: reading string value"});
  // Arrays: element type at +0, count at +4, elements from +12.
  c.push_back({"array_unknown_elem_type", patch<uint32_t>(kv_value("test.scores", 0), 99), "unknown element type 99"});
  c.push_back({"array_length_2p63", patch<uint64_t>(kv_value("test.scores", 4), k2p63), "9223372036854775808 elements, above the limit"});
  c.push_back({"array_length_2p40", patch<uint64_t>(kv_value("test.scores", 4), k2p40), "1099511627776 elements, above the limit"});
  c.push_back({"array_data_past_end", patch<uint64_t>(kv_value("test.scores", 4), 1u << 20), "truncated file: reading array data"});
  c.push_back({"string_array_length_2p40", patch<uint64_t>(kv_value("test.tokens", 4), k2p40), "above the limit"});
  c.push_back({"string_array_count_vs_file", patch<uint64_t>(kv_value("test.tokens", 4), 1u << 27), "more than the file can hold"});
  c.push_back({"array_string_length_2p63", patch<uint64_t>(kv_value("test.tokens", 12), k2p63), "array string at offset"});
  c.push_back({"nested_arrays_too_deep", [](B) { return nested_arrays(5, 1); }, "arrays nested deeper than 4"});
  c.push_back({"nested_array_count_vs_file", [](B) { return nested_arrays(2, k2p40 >> 16); }, "nested array at offset"});
  // Alignment.
  c.push_back({"alignment_48", patch<uint32_t>(kv_value("general.alignment", 0), 48), "general.alignment must be a power of two integer (got 48)"});
  c.push_back({"alignment_0", patch<uint32_t>(kv_value("general.alignment", 0), 0), "general.alignment must be a power of two integer (got 0)"});
  c.push_back({"alignment_2p30", patch<uint32_t>(kv_value("general.alignment", 0), 1u << 30), "general.alignment must be a power of two"});
  c.push_back({"alignment_string", [](B) {
                 // The writer refuses a string alignment, so write a look-alike key and rename it.
                 GgufWriter w;
                 EXPECT_TRUE(w.add_string("general.alignmenX", "32").ok());
                 GgufLayout l;
                 auto bytes = w.write_to_buffer(&l);
                 auto v = std::move(bytes).value();
                 v[l.kvs[0].key_offset + 8 + 16] = 't';
                 return v;
               },
               "general.alignment must be a power of two integer (got \"32\")"});
  // Tensor table.
  c.push_back({"tensor_name_length_2p63", patch<uint64_t>(t_name("b.weight", 0), k2p63), "tensor name at offset"});
  c.push_back({"tensor_name_empty", patch<uint64_t>(t_name("b.weight", 0), 0), "empty name"});
  c.push_back({"tensor_name_invalid_utf8", patch<uint8_t>(t_name("b.weight", 8), 0xc0), "name is not valid UTF-8"});
  c.push_back({"duplicate_tensor_name", patch<uint8_t>(t_name("b.weight", 8), 'a'), "duplicate tensor name 'a.weight'"});
  c.push_back({"n_dims_0", patch<uint32_t>(t_ndims("a.weight"), 0), "tensor 'a.weight': 0 dimensions (expected 1..4)"});
  c.push_back({"n_dims_5", patch<uint32_t>(t_ndims("a.weight"), 5), "tensor 'a.weight': 5 dimensions"});
  c.push_back({"n_dims_max", patch<uint32_t>(t_ndims("a.weight"), 0xffffffffu), "4294967295 dimensions"});
  c.push_back({"dim_0", patch<uint64_t>(t_dim("a.weight", 1), 0), "tensor 'a.weight': dimension 1 is 0"});
  c.push_back({"dim_2p63", patch<uint64_t>(t_dim("a.weight", 0), k2p63), "dimension 0 is 9223372036854775808"});
  c.push_back({"dims_product_overflows_u64", [](B b) {
                 auto v = b.bytes;
                 put<uint64_t>(v, b.tensor("a.weight").dims_offset, 1ull << 32);
                 put<uint64_t>(v, b.tensor("a.weight").dims_offset + 8, 1ull << 32);
                 return v;
               },
               "tensor 'a.weight': element count overflows"});
  c.push_back({"dims_product_exceeds_i64", [](B b) {
                 auto v = b.bytes;
                 put<uint64_t>(v, b.tensor("a.weight").dims_offset, 1ull << 62);
                 put<uint64_t>(v, b.tensor("a.weight").dims_offset + 8, 2);
                 return v;
               },
               "element count overflows"});
  c.push_back({"tensor_type_unknown_4", patch<uint32_t>(t_type("a.weight"), 4), "tensor 'a.weight': unknown tensor type 4"});
  c.push_back({"tensor_type_unknown_1000", patch<uint32_t>(t_type("b.weight"), 1000), "unknown tensor type 1000"});
  c.push_back({"row_not_block_multiple_type", patch<uint32_t>(t_type("a.weight"), 2),
               "row length 8 is not a multiple of the Q4_0 block size 32"});
  c.push_back({"row_not_block_multiple_dim", patch<uint64_t>(t_dim("q.weight", 0), 48),
               "row length 48 is not a multiple of the Q8_0 block size 32"});
  c.push_back({"tensor_bytes_overflow", [](B b) {
                 auto v = b.bytes;
                 // 2^62 F32 elements fit int64 but their 2^64 bytes do not.
                 put<uint64_t>(v, b.tensor("b.weight").dims_offset, 1ull << 62);
                 return v;
               },
               "tensor 'b.weight': byte size overflows"});
  c.push_back({"offset_unaligned", patch<uint64_t>(t_off("b.weight"), 68), "data offset 68 is not a multiple of the alignment 32"});
  c.push_back({"offset_out_of_range", patch<uint64_t>(t_off("q.weight"), 1u << 20), "tensor 'q.weight': data [1048576, +68) lies outside the file"});
  c.push_back({"offset_plus_size_overflows", patch<uint64_t>(t_off("q.weight"), ~uint64_t{31}), "tensor 'q.weight': data [18446744073709551584"});
  c.push_back({"tensors_overlap", patch<uint64_t>(t_off("b.weight"), 32), "overlaps tensor"});
  c.push_back({"tensors_same_offset", patch<uint64_t>(t_off("q.weight"), 0), "overlaps tensor"});
  c.push_back({"data_truncated", [](B b) {
                 return std::vector<uint8_t>(b.bytes.begin(), b.bytes.end() - 40);
               },
               "tensor 'q.weight': data"});
  return c;
}

class GgufMalformed : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { base_ = new Base(make_base()); }
  static void TearDownTestSuite() { delete base_; }
  static Base* base_;
};
Base* GgufMalformed::base_ = nullptr;

TEST_F(GgufMalformed, BaseFileIsValid) {
  Status s = parse_status(base_->bytes);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(base_->layout.tensors.size(), 3u);
}

TEST_F(GgufMalformed, EveryCaseIsRejectedWithItsReason) {
  const auto cases = corpus();
  EXPECT_GE(cases.size(), 30u);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::vector<uint8_t> bytes = c.make(*base_);
    ASSERT_FALSE(bytes.empty());
    EXPECT_NE(bytes, base_->bytes) << "case did not change the file";
    Status s = parse_status(bytes);
    EXPECT_FALSE(s.ok()) << "accepted";
    EXPECT_NE(s.message().find(c.needle), std::string::npos)
        << "want '" << c.needle << "' in: " << s.to_string();
  }
}

// The same files from disk through GgufFile::open: the path is prepended.
TEST_F(GgufMalformed, OpenFromFileNamesPathAndReason) {
  testing::ScratchDir dir("malformed-open");
  for (const Case& c : corpus()) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.file(c.name + ".gguf");
    ASSERT_TRUE(testing::write_file(path, c.make(*base_)));
    auto f = GgufFile::open(path);
    ASSERT_FALSE(f.ok());
    const std::string& m = f.status().message();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
    EXPECT_NE(m.find(c.needle), std::string::npos) << "want '" << c.needle << "' in: " << m;
  }
}

// Truncating the file at any byte of the header (magic through the padding
// before the data) and at several points inside the data is an error that
// says the file is too short for what it declares.
TEST_F(GgufMalformed, TruncatedAtEveryHeaderByteAndInData) {
  const auto& full = base_->bytes;
  std::vector<uint64_t> cuts;
  for (uint64_t n = 0; n < base_->layout.data_offset; ++n) cuts.push_back(n);
  for (const auto& t : base_->layout.tensors) {
    cuts.push_back(t.data_offset + 1);
    cuts.push_back(t.data_offset + t.n_bytes - 1);
  }
  const char* const reasons[] = {"truncated file", "impossible for this file", "past the end of the file",
                                 "lies outside the file", "more than the file can hold"};
  size_t checked = 0;
  for (uint64_t n : cuts) {
    SCOPED_TRACE("cut at " + std::to_string(n));
    Status s = parse_status(std::vector<uint8_t>(full.begin(), full.begin() + n));
    ASSERT_FALSE(s.ok()) << "accepted a file cut at " << n;
    bool named = false;
    for (const char* r : reasons) named = named || s.message().find(r) != std::string::npos;
    EXPECT_TRUE(named) << s.to_string();
    ++checked;
  }
  EXPECT_GT(checked, 200u);
  // Padding after the last tensor is optional: a file ending right after the
  // last data byte is valid.
  const auto& last = base_->layout.tensors.back();
  ASSERT_LT(last.data_offset + last.n_bytes, full.size());
  Status s = parse_status(std::vector<uint8_t>(full.begin(), full.begin() + last.data_offset + last.n_bytes));
  EXPECT_TRUE(s.ok()) << s.to_string();
}

// Flipping each header byte in turn must never crash; most flips are
// rejected, and any accepted file must still have all tensor data inside it.
TEST_F(GgufMalformed, EveryHeaderByteFlipIsHandled) {
  for (uint64_t i = 0; i < base_->layout.data_offset; ++i) {
    for (uint8_t x : {0x01, 0x80, 0xff}) {
      auto v = base_->bytes;
      v[i] ^= x;
      auto f = GgufFile::parse(v.data(), v.size());
      if (!f.ok()) continue;
      for (const auto& t : (*f)->tensors()) {
        ASSERT_GE(t.data, v.data());
        ASSERT_LE(t.data + t.n_bytes, v.data() + v.size()) << "byte " << i;
      }
      for (const auto& kv : (*f)->metadata()) (void)kv.value.to_display_string();
    }
  }
}

// Every corrupt file through `frugal inspect`: a clean non-zero exit, an
// "error:" line naming the problem, and no crash or sanitizer report.
TEST_F(GgufMalformed, CliInspectFailsCleanly) {
  testing::ScratchDir dir("malformed-cli");
  const auto cases = corpus();
  size_t ran = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = dir.file(c.name + ".gguf");
    ASSERT_TRUE(testing::write_file(path, c.make(*base_)));
    auto r = testing::run_cli({"inspect", path}, dir, c.name, 60);
    ASSERT_TRUE(r.started) << "could not start " << FRUGAL_CLI;
    EXPECT_FALSE(r.timed_out);
    EXPECT_FALSE(r.signaled) << "killed by signal " << r.signal << "\n" << r.err;
    EXPECT_TRUE(r.exited);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("error:"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << "want '" << c.needle << "' in: " << r.err;
    EXPECT_EQ(r.err.find("Sanitizer"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("runtime error"), std::string::npos) << r.err;
    ++ran;
  }
  EXPECT_GE(ran, 30u);
  // The control: the valid base file is inspected successfully.
  const std::string ok_path = dir.file("base.gguf");
  ASSERT_TRUE(testing::write_file(ok_path, base_->bytes));
  auto ok = testing::run_cli({"inspect", ok_path}, dir, "base");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_NE(ok.out.find("q.weight"), std::string::npos) << ok.out;
}

}  // namespace
}  // namespace frugal
