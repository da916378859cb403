// GgufWriter: round trips through the reader for every value type, tensor
// layout and alignment, input validation, and rewriting a real model file.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "frugal/gguf.h"
#include "frugal/gguf_writer.h"
#include "gguf_test_util.h"

namespace frugal {
namespace {

std::string shared(const std::string& rel) { return std::string(FRUGAL_SHARED_DIR) + "/" + rel; }

std::unique_ptr<GgufFile> reparse(const std::vector<uint8_t>& bytes) {
  auto f = GgufFile::parse(bytes.data(), bytes.size());
  EXPECT_TRUE(f.ok()) << f.status().to_string();
  return f.ok() ? std::move(f).value() : nullptr;
}

bool has(const Status& s, const std::string& needle) {
  return s.message().find(needle) != std::string::npos;
}

TEST(GgufWriter, EmptyFileRoundTrips) {
  GgufWriter w;
  auto bytes = w.write_to_buffer();
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  EXPECT_EQ(bytes->size(), 24u);  // magic, version, two counts
  auto f = reparse(*bytes);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_TRUE(f->tensors().empty());
}

TEST(GgufWriter, EveryScalarTypeRoundTrips) {
  GgufWriter w;
  ASSERT_TRUE(w.add_u8("t.u8", 250).ok());
  ASSERT_TRUE(w.add_i8("t.i8", -120).ok());
  ASSERT_TRUE(w.add_u16("t.u16", 65000).ok());
  ASSERT_TRUE(w.add_i16("t.i16", -32000).ok());
  ASSERT_TRUE(w.add_u32("t.u32", 4000000000u).ok());
  ASSERT_TRUE(w.add_i32("t.i32", -2000000000).ok());
  ASSERT_TRUE(w.add_u64("t.u64", 0xfedcba9876543210ull).ok());
  ASSERT_TRUE(w.add_i64("t.i64", std::numeric_limits<int64_t>::min()).ok());
  ASSERT_TRUE(w.add_f32("t.f32", 1.5e-5f).ok());
  ASSERT_TRUE(w.add_f64("t.f64", -3.141592653589793).ok());
  ASSERT_TRUE(w.add_bool("t.true", true).ok());
  ASSERT_TRUE(w.add_bool("t.false", false).ok());
  ASSERT_TRUE(w.add_string("t.str", "h\xc3\xa9llo \"w\"\n").ok());
  ASSERT_TRUE(w.add_string("t.empty", "").ok());
  auto bytes = w.write_to_buffer();
  ASSERT_TRUE(bytes.ok());
  auto f = reparse(*bytes);
  ASSERT_TRUE(f);
  ASSERT_EQ(f->metadata().size(), 14u);
  // Order is preserved.
  EXPECT_EQ(f->metadata()[0].key, "t.u8");
  EXPECT_EQ(f->metadata()[13].key, "t.empty");
  auto type_of = [&](const char* k) { return f->find(k)->type; };
  EXPECT_EQ(type_of("t.u8"), GgufValueType::kUint8);
  EXPECT_EQ(f->find("t.u8")->u64, 250u);
  EXPECT_EQ(type_of("t.i8"), GgufValueType::kInt8);
  EXPECT_EQ(f->find("t.i8")->i64, -120);
  EXPECT_EQ(type_of("t.u16"), GgufValueType::kUint16);
  EXPECT_EQ(f->find("t.u16")->u64, 65000u);
  EXPECT_EQ(type_of("t.i16"), GgufValueType::kInt16);
  EXPECT_EQ(f->find("t.i16")->i64, -32000);
  EXPECT_EQ(type_of("t.u32"), GgufValueType::kUint32);
  EXPECT_EQ(f->find("t.u32")->u64, 4000000000u);
  EXPECT_EQ(type_of("t.i32"), GgufValueType::kInt32);
  EXPECT_EQ(f->find("t.i32")->i64, -2000000000);
  EXPECT_EQ(type_of("t.u64"), GgufValueType::kUint64);
  EXPECT_EQ(f->find("t.u64")->u64, 0xfedcba9876543210ull);
  EXPECT_EQ(type_of("t.i64"), GgufValueType::kInt64);
  EXPECT_EQ(f->find("t.i64")->i64, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(type_of("t.f32"), GgufValueType::kFloat32);
  EXPECT_EQ(f->find("t.f32")->f64, static_cast<double>(1.5e-5f));
  EXPECT_EQ(type_of("t.f64"), GgufValueType::kFloat64);
  EXPECT_EQ(f->find("t.f64")->f64, -3.141592653589793);
  EXPECT_EQ(type_of("t.true"), GgufValueType::kBool);
  EXPECT_TRUE(f->find("t.true")->b);
  EXPECT_FALSE(f->find("t.false")->b);
  EXPECT_EQ(type_of("t.str"), GgufValueType::kString);
  EXPECT_EQ(f->find("t.str")->str, "h\xc3\xa9llo \"w\"\n");
  EXPECT_EQ(f->find("t.empty")->str, "");
}

TEST(GgufWriter, EveryArrayTypeRoundTrips) {
  GgufWriter w;
  const std::vector<uint8_t> u8{0, 1, 255};
  const std::vector<int8_t> i8{-128, 0, 127};
  const std::vector<uint16_t> u16{0, 65535};
  const std::vector<int16_t> i16{-32768, 32767};
  const std::vector<uint32_t> u32{1, 2, 4000000000u};
  const std::vector<int32_t> i32{-7, 7};
  const std::vector<uint64_t> u64{0xffffffffffffffffull};
  const std::vector<int64_t> i64{-1, 1ll << 62};
  const std::vector<float> f32{0.25f, -1e30f};
  const std::vector<double> f64{1e-300, 2.5};
  const bool bools[] = {true, false, true};
  const std::vector<std::string> strs{"<unk>", "", "\xe2\x96\x81the"};
  const std::vector<std::string_view> views{"a", "bc"};
  ASSERT_TRUE(w.add_array_u8("a.u8", u8).ok());
  ASSERT_TRUE(w.add_array_i8("a.i8", i8).ok());
  ASSERT_TRUE(w.add_array_u16("a.u16", u16).ok());
  ASSERT_TRUE(w.add_array_i16("a.i16", i16).ok());
  ASSERT_TRUE(w.add_array_u32("a.u32", u32).ok());
  ASSERT_TRUE(w.add_array_i32("a.i32", i32).ok());
  ASSERT_TRUE(w.add_array_u64("a.u64", u64).ok());
  ASSERT_TRUE(w.add_array_i64("a.i64", i64).ok());
  ASSERT_TRUE(w.add_array_f32("a.f32", f32).ok());
  ASSERT_TRUE(w.add_array_f64("a.f64", f64).ok());
  ASSERT_TRUE(w.add_array_bool("a.bool", bools).ok());
  ASSERT_TRUE(w.add_array_string("a.str", strs).ok());
  ASSERT_TRUE(w.add_array_string("a.sv", views).ok());
  ASSERT_TRUE(w.add_array_f32("a.empty", std::vector<float>{}).ok());
  auto bytes = w.write_to_buffer();
  ASSERT_TRUE(bytes.ok());
  auto f = reparse(*bytes);
  ASSERT_TRUE(f);
  auto check_ints = [&](const char* key, GgufValueType et, const std::vector<int64_t>& want) {
    const GgufValue* v = f->find(key);
    ASSERT_NE(v, nullptr) << key;
    EXPECT_EQ(v->type, GgufValueType::kArray) << key;
    EXPECT_EQ(v->elem_type, et) << key;
    ASSERT_EQ(v->count, want.size()) << key;
    for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(*v->array_int(i), want[i]) << key << "[" << i << "]";
  };
  check_ints("a.u8", GgufValueType::kUint8, {0, 1, 255});
  check_ints("a.i8", GgufValueType::kInt8, {-128, 0, 127});
  check_ints("a.u16", GgufValueType::kUint16, {0, 65535});
  check_ints("a.i16", GgufValueType::kInt16, {-32768, 32767});
  check_ints("a.u32", GgufValueType::kUint32, {1, 2, 4000000000ll});
  check_ints("a.i32", GgufValueType::kInt32, {-7, 7});
  check_ints("a.u64", GgufValueType::kUint64, {-1});  // all ones, read back as int64
  check_ints("a.i64", GgufValueType::kInt64, {-1, 1ll << 62});
  check_ints("a.bool", GgufValueType::kBool, {1, 0, 1});
  const GgufValue* vf = f->find("a.f32");
  ASSERT_EQ(vf->elem_type, GgufValueType::kFloat32);
  ASSERT_EQ(vf->count, 2u);
  EXPECT_EQ(*vf->array_number(0), 0.25);
  EXPECT_EQ(*vf->array_number(1), static_cast<double>(-1e30f));
  const GgufValue* vd = f->find("a.f64");
  ASSERT_EQ(vd->elem_type, GgufValueType::kFloat64);
  EXPECT_EQ(*vd->array_number(0), 1e-300);
  EXPECT_EQ(*vd->array_number(1), 2.5);
  const GgufValue* vs = f->find("a.str");
  ASSERT_EQ(vs->elem_type, GgufValueType::kString);
  ASSERT_EQ(vs->strings.size(), 3u);
  EXPECT_EQ(vs->strings[0], "<unk>");
  EXPECT_EQ(vs->strings[1], "");
  EXPECT_EQ(vs->strings[2], "\xe2\x96\x81the");
  const GgufValue* vv = f->find("a.sv");
  ASSERT_EQ(vv->strings.size(), 2u);
  EXPECT_EQ(vv->strings[1], "bc");
  EXPECT_EQ(f->find("a.empty")->count, 0u);
}

// add_value copies what the reader decoded: writer -> reader -> writer is the identity.
TEST(GgufWriter, AddValueCopiesDecodedValues) {
  GgufWriter w;
  ASSERT_TRUE(w.add_i16("k.i16", -5).ok());
  ASSERT_TRUE(w.add_f32("k.f32", 0.1f).ok());
  ASSERT_TRUE(w.add_bool("k.b", true).ok());
  ASSERT_TRUE(w.add_string("k.s", "x").ok());
  const std::vector<std::string> s{"p", "q"};
  ASSERT_TRUE(w.add_array_string("k.as", s).ok());
  const std::vector<int32_t> a{3, -4, 5};
  ASSERT_TRUE(w.add_array_i32("k.ai", a).ok());
  ASSERT_TRUE(w.set_alignment(64).ok());
  auto first = w.write_to_buffer();
  ASSERT_TRUE(first.ok());
  auto f = reparse(*first);
  ASSERT_TRUE(f);
  GgufWriter copy;
  for (const auto& kv : f->metadata()) ASSERT_TRUE(copy.add_value(kv.key, kv.value).ok()) << kv.key;
  auto second = copy.write_to_buffer();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*first, *second);
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7);
  return v;
}

TEST(GgufWriter, TensorsRoundTripWithDefaultAlignment) {
  GgufWriter w;
  const std::vector<int64_t> d0{3}, d1{64, 2}, d2{2, 3, 4, 5};
  const auto b0 = pattern(12, 1), b1 = pattern(2 * 34 * 2, 2), b2 = pattern(120 * 2, 3);
  ASSERT_TRUE(w.add_tensor("a", d0, TensorType::kF32, b0).ok());
  ASSERT_TRUE(w.add_tensor("b.q8", d1, TensorType::kQ8_0, b1).ok());
  ASSERT_TRUE(w.add_tensor_ref("c.bf16", d2, TensorType::kBF16, b2).ok());
  GgufLayout layout;
  auto bytes = w.write_to_buffer(&layout);
  ASSERT_TRUE(bytes.ok()) << bytes.status().to_string();
  EXPECT_EQ(layout.alignment, 32u);
  EXPECT_EQ(layout.data_offset % 32, 0u);
  EXPECT_EQ(layout.file_size, bytes->size());
  auto f = reparse(*bytes);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->data_offset(), layout.data_offset);
  ASSERT_EQ(f->tensors().size(), 3u);
  const std::vector<const std::vector<uint8_t>*> want{&b0, &b1, &b2};
  const std::vector<std::vector<int64_t>> dims{d0, d1, d2};
  const TensorType types[] = {TensorType::kF32, TensorType::kQ8_0, TensorType::kBF16};
  for (size_t i = 0; i < 3; ++i) {
    const GgufTensorInfo& t = f->tensors()[i];
    EXPECT_EQ(t.name, layout.tensors[i].name);
    EXPECT_EQ(t.dims, dims[i]);
    EXPECT_EQ(t.type, types[i]);
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_EQ(f->data_offset() + t.offset, layout.tensors[i].data_offset);
    ASSERT_EQ(t.n_bytes, want[i]->size());
    EXPECT_EQ(std::memcmp(t.data, want[i]->data(), t.n_bytes), 0) << t.name;
  }
  // Padding between tensors is zero.
  for (uint64_t p = layout.tensors[0].data_offset + 12; p < layout.tensors[1].data_offset; ++p)
    EXPECT_EQ((*bytes)[p], 0) << p;
}

TEST(GgufWriter, AlignmentIsHonoured) {
  for (uint32_t a : {1u, 8u, 64u, 4096u}) {
    GgufWriter w;
    ASSERT_TRUE(w.set_alignment(a).ok());
    EXPECT_EQ(w.alignment(), a);
    const auto b = pattern(6, 9);
    const std::vector<int64_t> d{3};
    ASSERT_TRUE(w.add_tensor("x", d, TensorType::kF16, b).ok());
    ASSERT_TRUE(w.add_tensor("y", d, TensorType::kF16, b).ok());
    auto bytes = w.write_to_buffer();
    ASSERT_TRUE(bytes.ok());
    auto f = reparse(*bytes);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->alignment(), a);
    EXPECT_EQ(f->data_offset() % a, 0u);
    EXPECT_EQ(f->tensors()[1].offset, a == 1 ? 6u : (6 + a - 1) / a * a) << a;
    auto ga = f->get_int("general.alignment");
    ASSERT_TRUE(ga.ok() && ga->has_value());
    EXPECT_EQ(**ga, a);
    EXPECT_EQ(f->find("general.alignment")->type, GgufValueType::kUint32);
  }
  GgufWriter w;
  ASSERT_TRUE(w.set_alignment(128).ok());
  EXPECT_TRUE(w.remove_key("general.alignment"));
  EXPECT_EQ(w.alignment(), 32u);
}

TEST(GgufWriter, FillCallbackProducesData) {
  GgufWriter w;
  const std::vector<int64_t> d{4, 2};
  int calls = 0;
  ASSERT_TRUE(w.add_tensor_fill("gen", d, TensorType::kF32, [&](std::span<uint8_t> out) {
                 ++calls;
                 for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i);
                 return Status::Ok();
               }).ok());
  auto bytes = w.write_to_buffer();
  ASSERT_TRUE(bytes.ok());
  EXPECT_EQ(calls, 1);
  auto f = reparse(*bytes);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->tensors()[0].data[31], 31);

  GgufWriter bad;
  ASSERT_TRUE(bad.add_tensor_fill("gen", d, TensorType::kF32, [](std::span<uint8_t>) {
                 return corrupt_data("source tensor unreadable");
               }).ok());
  auto r = bad.write_to_buffer();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(has(r.status(), "tensor 'gen': source tensor unreadable")) << r.status().to_string();
}

TEST(GgufWriter, RejectsBadInput) {
  GgufWriter w;
  const std::vector<int64_t> d{32};
  const auto f32 = pattern(128, 0);
  ASSERT_TRUE(w.add_tensor("t", d, TensorType::kF32, f32).ok());
  ASSERT_TRUE(w.add_u32("k", 1).ok());
  struct Case {
    Status s;
    const char* needle;
  };
  const std::vector<int64_t> d0{}, d5{1, 1, 1, 1, 1}, dz{32, 0}, dneg{-32}, dbig{1ll << 40, 1ll << 40},
      d33{33};
  const Case cases[] = {
      {w.add_tensor("u", d, TensorType::kF32, pattern(127, 0)), "127 bytes given, F32 [32] needs 128"},
      {w.add_tensor("u", d, TensorType::kF16, f32), "needs 64"},
      {w.add_tensor("t", d, TensorType::kF32, f32), "duplicate tensor name 't'"},
      {w.add_tensor("", d, TensorType::kF32, f32), "tensor name is empty"},
      {w.add_tensor(std::string(64, 'n'), d, TensorType::kF32, f32), "name longer than 63"},
      {w.add_tensor("bad\xff", d, TensorType::kF32, f32), "not valid UTF-8"},
      {w.add_tensor("u", d0, TensorType::kF32, f32), "0 dimensions"},
      {w.add_tensor("u", d5, TensorType::kF32, f32), "5 dimensions"},
      {w.add_tensor("u", dz, TensorType::kF32, f32), "dimension 1 is 0"},
      {w.add_tensor("u", dneg, TensorType::kF32, f32), "dimension 0 is -32"},
      {w.add_tensor("u", dbig, TensorType::kF32, f32), "element count overflows"},
      {w.add_tensor("u", d33, TensorType::kQ4_0, f32), "not a multiple of the Q4_0 block size 32"},
      {w.add_tensor("u", d, static_cast<TensorType>(5), f32), "unknown tensor type 5"},
      {w.add_u8("k", 1), "duplicate metadata key 'k'"},
      {w.add_string("", "v"), "metadata key is empty"},
      {w.add_bool("k\xc0\x80", true), "not valid UTF-8"},  // overlong NUL
      {w.add_u32("general.alignment", 0), "power of two"},
      {w.add_u32("general.alignment", 48), "power of two"},
      {w.add_u32("general.alignment", 1u << 21), "power of two"},
      {w.add_u64("general.alignment", 32), "must be a u32"},
      {w.add_string("general.alignment", "32"), "must be a u32"},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(c.s.ok()) << c.needle;
    EXPECT_TRUE(has(c.s, c.needle)) << "want '" << c.needle << "' in: " << c.s.to_string();
  }
  // Failed calls leave the writer unchanged.
  EXPECT_EQ(w.tensor_count(), 1u);
  EXPECT_EQ(w.kv_count(), 1u);
  EXPECT_EQ(w.alignment(), 32u);

  GgufValue nested;
  nested.type = GgufValueType::kArray;
  nested.elem_type = GgufValueType::kArray;
  Status s = w.add_value("n", nested);
  EXPECT_EQ(s.code(), ErrorCode::kUnsupported);
  EXPECT_TRUE(has(s, "arrays of arr")) << s.to_string();
}

TEST(GgufWriter, WritesFilesAtomically) {
  testing::ScratchDir dir("writer");
  GgufWriter w;
  ASSERT_TRUE(w.add_string("general.name", "file test").ok());
  const std::vector<int64_t> d{256};
  const auto q4k = pattern(144, 5);
  ASSERT_TRUE(w.add_tensor("q", d, TensorType::kQ4_K, q4k).ok());
  const std::string path = dir.file("out.gguf");
  GgufLayout layout;
  ASSERT_TRUE(w.write_to_file(path, &layout).ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(std::filesystem::file_size(path), layout.file_size);
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ(std::memcmp((*f)->tensors()[0].data, q4k.data(), 144), 0);
  // Same bytes as the in-memory writer.
  auto buf = w.write_to_buffer();
  ASSERT_TRUE(buf.ok());
  EXPECT_EQ(testing::read_text(path), std::string(buf->begin(), buf->end()));

  Status bad = w.write_to_file(dir.file("no/such/dir/x.gguf"));
  EXPECT_EQ(bad.code(), ErrorCode::kIoError);
  EXPECT_TRUE(has(bad, "cannot create")) << bad.to_string();
}

// Rewriting a llama.cpp-written file through reader + writer reproduces it
// byte for byte: same header encoding, padding and tensor placement.
TEST(GgufWriter, RewritesRealFileIdentically) {
  const std::string path = shared("models/gguf/tiny-llama-draft-bf16.gguf");
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  GgufWriter w;
  for (const auto& kv : (*f)->metadata()) ASSERT_TRUE(w.add_value(kv.key, kv.value).ok()) << kv.key;
  for (const auto& t : (*f)->tensors())
    ASSERT_TRUE(w.add_tensor_ref(t.name, t.dims, t.type, {t.data, t.n_bytes}).ok()) << t.name;
  auto bytes = w.write_to_buffer();
  ASSERT_TRUE(bytes.ok());
  const std::string original = testing::read_text(path);
  ASSERT_EQ(bytes->size(), original.size());
  EXPECT_TRUE(std::memcmp(bytes->data(), original.data(), original.size()) == 0);
}

}  // namespace
}  // namespace frugal
