// Parquet reading for Delta checkpoints: the thrift footer is decoded field by field with
// libthrift's compact protocol (no generated code: we only need a handful of fields and must
// tolerate every writer's extras), pages are decompressed with snappy/zlib/zstd, values decoded
// from PLAIN and dictionary encodings, and nested rows reassembled from repetition and
// definition levels.
#include "parquet/parquet.h"

#include <fcntl.h>
#include <snappy.h>
#include <sys/stat.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>

namespace lakevault::parquet {
namespace {

using apache::thrift::TException;
using apache::thrift::protocol::TCompactProtocolT;
using apache::thrift::protocol::TType;
using apache::thrift::transport::TMemoryBuffer;
using Proto = TCompactProtocolT<TMemoryBuffer>;

constexpr size_t kMaxFooter = 256u << 20;
constexpr size_t kMaxPage = 512u << 20;

// A thrift reader over a byte range; `consumed()` says how far a struct went.
class ThriftReader {
 public:
  ThriftReader(const uint8_t* data, size_t size)
      : buffer_(std::make_shared<TMemoryBuffer>(
            const_cast<uint8_t*>(data), static_cast<uint32_t>(size), TMemoryBuffer::OBSERVE)),
        proto_(buffer_),
        size_(size) {}
  Proto& p() { return proto_; }
  size_t consumed() { return size_ - buffer_->available_read(); }

  // Calls `field(id, type)` for every field of the struct at the cursor; `field` returns false
  // to have the field skipped.
  void Struct(const std::function<bool(int16_t, TType)>& field) {
    std::string name;
    proto_.readStructBegin(name);
    while (true) {
      TType type;
      int16_t id;
      proto_.readFieldBegin(name, type, id);
      if (type == apache::thrift::protocol::T_STOP) break;
      if (!field(id, type)) proto_.skip(type);
      proto_.readFieldEnd();
    }
    proto_.readStructEnd();
  }
  void List(const std::function<void()>& element) {
    TType type;
    uint32_t n;
    proto_.readListBegin(type, n);
    for (uint32_t i = 0; i < n; ++i) element();
    proto_.readListEnd();
  }
  int32_t I32() {
    int32_t v;
    proto_.readI32(v);
    return v;
  }
  int64_t I64() {
    int64_t v;
    proto_.readI64(v);
    return v;
  }
  std::string String() {
    std::string s;
    proto_.readString(s);
    return s;
  }
  bool Bool() {
    bool b;
    proto_.readBool(b);
    return b;
  }

 private:
  std::shared_ptr<TMemoryBuffer> buffer_;
  Proto proto_;
  size_t size_;
};

const char* PhysicalName(int t) {
  static const char* names[] = {"BOOLEAN", "INT32",  "INT64",      "INT96",
                                "FLOAT",   "DOUBLE", "BYTE_ARRAY", "FIXED_LEN_BYTE_ARRAY"};
  return t >= 0 && t < 8 ? names[t] : "UNKNOWN";
}
const char* RepetitionName(int r) {
  return r == 0 ? "REQUIRED" : r == 1 ? "OPTIONAL" : r == 2 ? "REPEATED" : "UNKNOWN";
}

struct RawSchemaElement {
  int type = -1;
  int type_length = 0;
  int repetition = 0;
  std::string name;
  int num_children = 0;
  int converted = -1;
  std::string logical;
};

struct ColumnChunkMeta {
  int type = -1;
  std::vector<std::string> path;
  int codec = 0;
  int64_t num_values = 0;
  int64_t total_compressed = 0;
  int64_t data_page_offset = -1;
  int64_t dictionary_page_offset = -1;
};

struct RawRowGroup {
  int64_t num_rows = 0;
  int64_t total_byte_size = 0;
  std::vector<ColumnChunkMeta> columns;
};

struct RawMetadata {
  int64_t num_rows = 0;
  std::vector<RawSchemaElement> schema;
  std::vector<RawRowGroup> row_groups;
  std::string created_by;
};

std::string LogicalName(ThriftReader& r) {
  // LogicalType is a union: the set field's id names the type.
  static const char* names[] = {"",     "STRING", "MAP",       "LIST",   "ENUM",    "DECIMAL",
                                "DATE", "TIME",   "TIMESTAMP", "",       "INTEGER", "UNKNOWN",
                                "JSON", "BSON",   "UUID",      "FLOAT16"};
  std::string out;
  r.Struct([&](int16_t id, TType) {
    if (id > 0 && id < 16) out = names[id];
    return false;
  });
  return out;
}

RawMetadata DecodeFileMetaData(ThriftReader& r) {
  RawMetadata md;
  r.Struct([&](int16_t id, TType) {
    switch (id) {
      case 2:
        r.List([&] {
          RawSchemaElement e;
          r.Struct([&](int16_t fid, TType) {
            switch (fid) {
              case 1:
                e.type = r.I32();
                return true;
              case 2:
                e.type_length = r.I32();
                return true;
              case 3:
                e.repetition = r.I32();
                return true;
              case 4:
                e.name = r.String();
                return true;
              case 5:
                e.num_children = r.I32();
                return true;
              case 6:
                e.converted = r.I32();
                return true;
              case 10:
                e.logical = LogicalName(r);
                return true;
              default:
                return false;
            }
          });
          md.schema.push_back(std::move(e));
        });
        return true;
      case 3:
        md.num_rows = r.I64();
        return true;
      case 4:
        r.List([&] {
          RawRowGroup rg;
          r.Struct([&](int16_t gid, TType) {
            switch (gid) {
              case 1:
                r.List([&] {
                  ColumnChunkMeta cc;
                  r.Struct([&](int16_t cid, TType) {
                    if (cid != 3) return false;
                    r.Struct([&](int16_t mid, TType) {
                      switch (mid) {
                        case 1:
                          cc.type = r.I32();
                          return true;
                        case 3:
                          r.List([&] { cc.path.push_back(r.String()); });
                          return true;
                        case 4:
                          cc.codec = r.I32();
                          return true;
                        case 5:
                          cc.num_values = r.I64();
                          return true;
                        case 7:
                          cc.total_compressed = r.I64();
                          return true;
                        case 9:
                          cc.data_page_offset = r.I64();
                          return true;
                        case 11:
                          cc.dictionary_page_offset = r.I64();
                          return true;
                        default:
                          return false;
                      }
                    });
                    return true;
                  });
                  rg.columns.push_back(std::move(cc));
                });
                return true;
              case 2:
                rg.total_byte_size = r.I64();
                return true;
              case 3:
                rg.num_rows = r.I64();
                return true;
              default:
                return false;
            }
          });
          md.row_groups.push_back(std::move(rg));
        });
        return true;
      case 6:
        md.created_by = r.String();
        return true;
      default:
        return false;
    }
  });
  return md;
}

// Builds the schema tree from the flattened depth-first element list.
Result<SchemaNode> BuildTree(const std::vector<RawSchemaElement>& flat, size_t& pos, int depth) {
  if (pos >= flat.size()) return Error("schema ends early");
  if (depth > 64) return Error("schema nested too deeply");
  const RawSchemaElement& e = flat[pos++];
  SchemaNode node;
  node.name = e.name;
  node.repetition = RepetitionName(e.repetition);
  node.logical_type = e.logical;
  if (node.logical_type.empty()) {
    if (e.converted == 0) node.logical_type = "STRING";
    if (e.converted == 1 || e.converted == 2) node.logical_type = "MAP";
    if (e.converted == 3) node.logical_type = "LIST";
  }
  if (e.num_children > 0) {
    if (static_cast<size_t>(e.num_children) > flat.size()) return Error("bad child count");
    for (int i = 0; i < e.num_children; ++i) {
      LV_ASSIGN_OR_RETURN(SchemaNode child, BuildTree(flat, pos, depth + 1));
      node.children.push_back(std::move(child));
    }
  } else {
    node.physical_type = PhysicalName(e.type);
  }
  return node;
}

Result<RawMetadata> DecodeFooterBytes(const std::string& tail, size_t* footer_len) {
  if (tail.size() < 8 || tail.compare(tail.size() - 4, 4, "PAR1") != 0)
    return Error("not a Parquet file (no PAR1 trailer)");
  uint32_t len;
  std::memcpy(&len, tail.data() + tail.size() - 8, 4);
  if (len > tail.size() - 8) return Error("footer length " + std::to_string(len) + " exceeds file");
  if (footer_len) *footer_len = len;
  const auto* start = reinterpret_cast<const uint8_t*>(tail.data() + tail.size() - 8 - len);
  try {
    ThriftReader r(start, len);
    RawMetadata md = DecodeFileMetaData(r);
    if (md.schema.empty()) return Error("footer has no schema");
    return md;
  } catch (const TException& e) {
    return Error(std::string("malformed footer: ") + e.what());
  } catch (const std::exception& e) {
    return Error(std::string("malformed footer: ") + e.what());
  }
}

Result<FileMetadata> ToPublic(const RawMetadata& md) {
  FileMetadata out;
  out.num_rows = md.num_rows;
  out.created_by = md.created_by;
  for (const auto& rg : md.row_groups) out.row_groups.push_back({rg.num_rows, rg.total_byte_size});
  size_t pos = 0;
  LV_ASSIGN_OR_RETURN(out.schema, BuildTree(md.schema, pos, 0));
  return out;
}

Result<std::string> ReadTail(const std::string& path, size_t want, uint64_t* file_size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error("opening " + path + ": " + std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Error("stat " + path + ": " + std::strerror(errno));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (file_size) *file_size = size;
  size_t n = static_cast<size_t>(std::min<uint64_t>(want, size));
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, out.data() + got, n - got, static_cast<off_t>(size - n + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      ::close(fd);
      return Error("reading " + path + ": " + (r < 0 ? std::strerror(errno) : "short read"));
    }
    got += static_cast<size_t>(r);
  }
  ::close(fd);
  return out;
}

// ---------------------------------------------------------------- value decoding

// A leaf column's values for all rows: levels per entry and the non-null values in order.
// A PLAIN byte array left in its page (ColumnData::pages), read when its row is built.
struct TextRef {
  static constexpr uint32_t kNoPage = UINT32_MAX;
  uint32_t page = kNoPage;  // kNoPage: the value is in ColumnData::values
  uint32_t offset = 0;
  uint32_t size = 0;
};

struct ColumnData {
  std::vector<uint8_t> rep;
  std::vector<uint8_t> def;
  std::vector<nlohmann::json> values;  // one per entry with def == max_def
  // PLAIN byte arrays stay in their decompressed page until their row is built (values holds null
  // for them): a checkpoint's stats column can be one page of tens of MB per row group, and as
  // separate strings it took as much again. Empty until such a page is read; then one per value.
  std::vector<std::shared_ptr<const std::string>> pages;
  std::vector<TextRef> text;

  // Value `i`, moved out: every value belongs to one place in one row.
  nlohmann::json Take(size_t i) {
    if (i < text.size() && text[i].page != TextRef::kNoPage) {
      TextRef t = std::exchange(text[i], TextRef{});  // taken twice, it is null as a moved value
      return std::string(pages[t.page]->data() + t.offset, t.size);
    }
    return std::move(values[i]);
  }
};

struct Leaf {
  std::vector<std::string> path;
  int physical = -1;
  int type_length = 0;
  bool is_string = false;
  int max_def = 0;
  int max_rep = 0;
};

class ByteCursor {
 public:
  ByteCursor(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  size_t left() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* pos() const { return p_; }
  bool Take(size_t n, const uint8_t** out) {
    if (left() < n) return false;
    *out = p_;
    p_ += n;
    return true;
  }
  bool Varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return false;
      uint8_t b = *p_++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = v;
        return true;
      }
    }
    return false;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// The RLE / bit-packing hybrid used for levels and dictionary indices.
Status DecodeHybrid(ByteCursor& in, int bit_width, size_t count, std::vector<uint32_t>& out) {
  if (bit_width < 0 || bit_width > 32) return Error("bad bit width " + std::to_string(bit_width));
  size_t start = out.size();
  while (out.size() - start < count) {
    uint64_t header;
    if (!in.Varint(&header)) return Error("truncated RLE run");
    if (header & 1) {
      uint64_t groups = header >> 1;
      if (groups > (1u << 28)) return Error("bit-packed run too long");
      size_t bytes = static_cast<size_t>(groups) * static_cast<size_t>(bit_width);
      const uint8_t* p;
      if (!in.Take(bytes, &p)) {
        // Writers may end a last partial group early; take what is there.
        bytes = in.left();
        in.Take(bytes, &p);
      }
      size_t n = static_cast<size_t>(groups) * 8;
      uint64_t bitpos = 0;
      for (size_t i = 0; i < n && out.size() - start < count; ++i) {
        uint32_t v = 0;
        for (int b = 0; b < bit_width; ++b, ++bitpos) {
          size_t byte = bitpos >> 3;
          if (byte >= bytes) return Error("truncated bit-packed run");
          v |= static_cast<uint32_t>((p[byte] >> (bitpos & 7)) & 1) << b;
        }
        out.push_back(v);
      }
    } else {
      uint64_t run = header >> 1;
      size_t width = static_cast<size_t>((bit_width + 7) / 8);
      const uint8_t* p;
      if (!in.Take(width, &p)) return Error("truncated RLE value");
      uint32_t v = 0;
      for (size_t i = 0; i < width; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
      if (run == 0) return Error("empty RLE run");
      for (uint64_t i = 0; i < run && out.size() - start < count; ++i) out.push_back(v);
    }
  }
  return Status::Ok();
}

int BitWidth(int max_level) {
  int w = 0;
  while ((1 << w) <= max_level) ++w;
  return w;
}

// One PLAIN BYTE_ARRAY value: a 4-byte length, then the bytes (`*p`, `*n`).
Status TakeByteArray(ByteCursor& in, const uint8_t** p, uint32_t* n) {
  if (!in.Take(4, p)) return Error("truncated BYTE_ARRAY length");
  std::memcpy(n, *p, 4);
  if (!in.Take(*n, p)) return Error("truncated BYTE_ARRAY value");
  return Status::Ok();
}

Status DecodePlain(ByteCursor& in, const Leaf& leaf, size_t count,
                   std::vector<nlohmann::json>& out) {
  const uint8_t* p;
  switch (leaf.physical) {
    case 0: {  // BOOLEAN, bit-packed LSB first
      size_t bytes = (count + 7) / 8;
      if (!in.Take(bytes, &p)) return Error("truncated BOOLEAN values");
      for (size_t i = 0; i < count; ++i) out.push_back(((p[i >> 3] >> (i & 7)) & 1) != 0);
      return Status::Ok();
    }
    case 1:
      for (size_t i = 0; i < count; ++i) {
        if (!in.Take(4, &p)) return Error("truncated INT32 values");
        int32_t v;
        std::memcpy(&v, p, 4);
        out.push_back(v);
      }
      return Status::Ok();
    case 2:
      for (size_t i = 0; i < count; ++i) {
        if (!in.Take(8, &p)) return Error("truncated INT64 values");
        int64_t v;
        std::memcpy(&v, p, 8);
        out.push_back(v);
      }
      return Status::Ok();
    case 3:  // INT96 timestamps: kept as raw hex, Delta actions never need them
    case 7: {
      size_t width = leaf.physical == 3 ? 12 : static_cast<size_t>(std::max(0, leaf.type_length));
      static const char* hex = "0123456789abcdef";
      for (size_t i = 0; i < count; ++i) {
        if (!in.Take(width, &p)) return Error("truncated fixed-length values");
        std::string s;
        for (size_t j = 0; j < width; ++j) {
          s.push_back(hex[p[j] >> 4]);
          s.push_back(hex[p[j] & 15]);
        }
        out.push_back(s);
      }
      return Status::Ok();
    }
    case 4:
      for (size_t i = 0; i < count; ++i) {
        if (!in.Take(4, &p)) return Error("truncated FLOAT values");
        float v;
        std::memcpy(&v, p, 4);
        out.push_back(v);
      }
      return Status::Ok();
    case 5:
      for (size_t i = 0; i < count; ++i) {
        if (!in.Take(8, &p)) return Error("truncated DOUBLE values");
        double v;
        std::memcpy(&v, p, 8);
        out.push_back(v);
      }
      return Status::Ok();
    case 6:
      for (size_t i = 0; i < count; ++i) {
        uint32_t n;
        LV_RETURN_IF_ERROR(TakeByteArray(in, &p, &n));
        out.push_back(std::string(reinterpret_cast<const char*>(p), n));
      }
      return Status::Ok();
    default:
      return Error("unsupported physical type " + std::to_string(leaf.physical));
  }
}

// DecodePlain of `count` BYTE_ARRAY values, the same checks, the values left in `page`.
Status DecodePlainText(ByteCursor& in, const std::shared_ptr<const std::string>& page, size_t count,
                       ColumnData& out) {
  const auto* base = reinterpret_cast<const uint8_t*>(page->data());
  auto index = static_cast<uint32_t>(out.pages.size());
  out.text.resize(out.values.size());
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* p;
    uint32_t n;
    LV_RETURN_IF_ERROR(TakeByteArray(in, &p, &n));
    out.text.push_back(TextRef{index, static_cast<uint32_t>(p - base), n});
    out.values.emplace_back();
  }
  if (count > 0) out.pages.push_back(page);
  return Status::Ok();
}

Result<std::string> Decompress(int codec, const uint8_t* data, size_t size, size_t uncompressed) {
  if (uncompressed > kMaxPage) return Error("page too large");
  std::string out;
  switch (codec) {
    case 0:
      return std::string(reinterpret_cast<const char*>(data), size);
    case 1: {
      size_t n;
      if (!snappy::GetUncompressedLength(reinterpret_cast<const char*>(data), size, &n) ||
          n > kMaxPage || !snappy::Uncompress(reinterpret_cast<const char*>(data), size, &out))
        return Error("corrupt snappy page");
      return out;
    }
    case 2: {
      out.resize(uncompressed);
      z_stream zs{};
      if (inflateInit2(&zs, 15 + 32) != Z_OK) return Error("zlib init failed");
      zs.next_in = const_cast<Bytef*>(data);
      zs.avail_in = static_cast<uInt>(size);
      zs.next_out = reinterpret_cast<Bytef*>(out.data());
      zs.avail_out = static_cast<uInt>(out.size());
      int rc = inflate(&zs, Z_FINISH);
      inflateEnd(&zs);
      if (rc != Z_STREAM_END) return Error("corrupt gzip page");
      out.resize(zs.total_out);
      return out;
    }
    case 6: {
      out.resize(uncompressed);
      size_t n = ZSTD_decompress(out.data(), out.size(), data, size);
      if (ZSTD_isError(n)) return Error(std::string("corrupt zstd page: ") + ZSTD_getErrorName(n));
      out.resize(n);
      return out;
    }
    default:
      return Error("unsupported compression codec " + std::to_string(codec));
  }
}

struct PageHeader {
  int type = -1;
  int32_t uncompressed = 0;
  int32_t compressed = 0;
  int32_t num_values = 0;
  int32_t encoding = 0;
  // v2
  int32_t def_bytes = 0;
  int32_t rep_bytes = 0;
  bool v2_compressed = true;
};

PageHeader DecodePageHeader(ThriftReader& r) {
  PageHeader h;
  r.Struct([&](int16_t id, TType) {
    switch (id) {
      case 1:
        h.type = r.I32();
        return true;
      case 2:
        h.uncompressed = r.I32();
        return true;
      case 3:
        h.compressed = r.I32();
        return true;
      case 5:  // DataPageHeader
      case 7:  // DictionaryPageHeader
        r.Struct([&](int16_t fid, TType) {
          if (fid == 1)
            h.num_values = r.I32();
          else if (fid == 2)
            h.encoding = r.I32();
          else
            return false;
          return true;
        });
        return true;
      case 8:  // DataPageHeaderV2
        r.Struct([&](int16_t fid, TType) {
          switch (fid) {
            case 1:
              h.num_values = r.I32();
              return true;
            case 4:
              h.encoding = r.I32();
              return true;
            case 5:
              h.def_bytes = r.I32();
              return true;
            case 6:
              h.rep_bytes = r.I32();
              return true;
            case 7:
              h.v2_compressed = r.Bool();
              return true;
            default:
              return false;
          }
        });
        return true;
      default:
        return false;
    }
  });
  return h;
}

Status ReadColumnChunk(const std::string& file, const ColumnChunkMeta& cc, const Leaf& leaf,
                       ColumnData& out) {
  int64_t start = cc.dictionary_page_offset > 0 && cc.dictionary_page_offset < cc.data_page_offset
                      ? cc.dictionary_page_offset
                      : cc.data_page_offset;
  if (start < 4 || static_cast<uint64_t>(start) >= file.size())
    return Error("column chunk offset out of range");
  const auto* base = reinterpret_cast<const uint8_t*>(file.data());
  size_t pos = static_cast<size_t>(start);
  std::vector<nlohmann::json> dictionary;
  int64_t seen = 0;
  std::vector<uint32_t> levels;
  std::vector<uint32_t> indices;
  while (seen < cc.num_values) {
    if (pos >= file.size()) return Error("column chunk runs past the end of the file");
    PageHeader h;
    try {
      ThriftReader r(base + pos, file.size() - pos);
      h = DecodePageHeader(r);
      pos += r.consumed();
    } catch (const std::exception& e) {
      return Error(std::string("malformed page header: ") + e.what());
    }
    if (h.compressed < 0 || h.uncompressed < 0 ||
        static_cast<size_t>(h.compressed) > file.size() - pos)
      return Error("page size out of range");
    const uint8_t* body = base + pos;
    pos += static_cast<size_t>(h.compressed);
    if (h.type == 2) {  // dictionary page
      LV_ASSIGN_OR_RETURN(std::string raw,
                          Decompress(cc.codec, body, static_cast<size_t>(h.compressed),
                                     static_cast<size_t>(h.uncompressed)));
      ByteCursor in(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
      dictionary.clear();
      if (h.num_values < 0) return Error("bad dictionary size");
      LV_RETURN_IF_ERROR(DecodePlain(in, leaf, static_cast<size_t>(h.num_values), dictionary));
      continue;
    }
    if (h.type != 0 && h.type != 3) continue;  // index pages and unknown pages carry no values
    if (h.num_values < 0) return Error("bad page value count");
    size_t n = static_cast<size_t>(h.num_values);
    // Shared: byte arrays may be left in it (DecodePlainText).
    auto page = std::make_shared<std::string>();
    std::string& raw = *page;
    ByteCursor levels_in(nullptr, 0);
    std::string v2_levels;
    if (h.type == 0) {
      LV_ASSIGN_OR_RETURN(raw, Decompress(cc.codec, body, static_cast<size_t>(h.compressed),
                                          static_cast<size_t>(h.uncompressed)));
    } else {
      size_t lv = static_cast<size_t>(h.def_bytes) + static_cast<size_t>(h.rep_bytes);
      if (h.def_bytes < 0 || h.rep_bytes < 0 || lv > static_cast<size_t>(h.compressed))
        return Error("bad v2 level sizes");
      v2_levels.assign(reinterpret_cast<const char*>(body), lv);
      if (h.v2_compressed) {
        LV_ASSIGN_OR_RETURN(raw,
                            Decompress(cc.codec, body + lv, static_cast<size_t>(h.compressed) - lv,
                                       static_cast<size_t>(h.uncompressed) - lv));
      } else {
        raw.assign(reinterpret_cast<const char*>(body + lv), h.compressed - lv);
      }
    }
    ByteCursor in(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
    auto read_levels = [&](int max, int v2_len, std::vector<uint8_t>& dst) -> Status {
      levels.clear();
      if (max == 0) {
        dst.insert(dst.end(), n, 0);
        return Status::Ok();
      }
      if (h.type == 0) {
        const uint8_t* p;
        if (!in.Take(4, &p)) return Error("truncated level length");
        uint32_t len;
        std::memcpy(&len, p, 4);
        if (!in.Take(len, &p)) return Error("truncated levels");
        ByteCursor lc(p, len);
        LV_RETURN_IF_ERROR(DecodeHybrid(lc, BitWidth(max), n, levels));
      } else {
        ByteCursor lc(reinterpret_cast<const uint8_t*>(v2_levels.data()) +
                          (&dst == &out.def ? h.rep_bytes : 0),
                      static_cast<size_t>(v2_len));
        LV_RETURN_IF_ERROR(DecodeHybrid(lc, BitWidth(max), n, levels));
      }
      for (uint32_t l : levels) {
        if (l > static_cast<uint32_t>(max)) return Error("level out of range");
        dst.push_back(static_cast<uint8_t>(l));
      }
      return Status::Ok();
    };
    size_t def_start = out.def.size();
    LV_RETURN_IF_ERROR(read_levels(leaf.max_rep, h.rep_bytes, out.rep));
    LV_RETURN_IF_ERROR(read_levels(leaf.max_def, h.def_bytes, out.def));
    size_t present = 0;
    for (size_t i = def_start; i < out.def.size(); ++i)
      if (out.def[i] == leaf.max_def) ++present;
    if (h.encoding == 0 && leaf.physical == 6) {
      LV_RETURN_IF_ERROR(DecodePlainText(in, page, present, out));
    } else if (h.encoding == 0) {
      LV_RETURN_IF_ERROR(DecodePlain(in, leaf, present, out.values));
    } else if (h.encoding == 2 || h.encoding == 8) {
      if (present > 0) {
        const uint8_t* p;
        if (!in.Take(1, &p)) return Error("truncated dictionary index width");
        indices.clear();
        LV_RETURN_IF_ERROR(DecodeHybrid(in, p[0], present, indices));
        for (uint32_t i : indices) {
          if (i >= dictionary.size()) return Error("dictionary index out of range");
          out.values.push_back(dictionary[i]);
        }
      }
    } else {
      return Error("unsupported encoding " + std::to_string(h.encoding));
    }
    seen += h.num_values;
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- record assembly

struct Node {
  std::string name;
  int repetition = 0;  // 0 required, 1 optional, 2 repeated
  std::string logical;
  int def = 0;
  int rep = 0;
  int leaf = -1;  // index into leaves for leaf nodes
  std::vector<Node> children;
};

// Builds the assembly tree for a subtree and registers its leaves.
void Annotate(const RawMetadata& md, size_t& pos, Node& node, int def, int rep,
              std::vector<std::string> path, std::vector<Leaf>& leaves, int depth) {
  const RawSchemaElement& e = md.schema[pos++];
  node.name = e.name;
  node.repetition = e.repetition;
  node.logical = e.logical;
  if (node.logical.empty()) {
    if (e.converted == 1 || e.converted == 2) node.logical = "MAP";
    if (e.converted == 3) node.logical = "LIST";
  }
  if (e.repetition == 1) def += 1;
  if (e.repetition == 2) {
    def += 1;
    rep += 1;
  }
  node.def = def;
  node.rep = rep;
  path.push_back(e.name);
  if (e.num_children <= 0) {
    Leaf leaf;
    leaf.path = path;
    leaf.physical = e.type;
    leaf.type_length = e.type_length;
    leaf.is_string = e.converted == 0 || e.logical == "STRING";
    leaf.max_def = def;
    leaf.max_rep = rep;
    node.leaf = static_cast<int>(leaves.size());
    leaves.push_back(std::move(leaf));
    return;
  }
  for (int i = 0; i < e.num_children && pos < md.schema.size(); ++i) {
    node.children.emplace_back();
    Annotate(md, pos, node.children.back(), def, rep, path, leaves, depth + 1);
  }
}

void SkipSubtree(const RawMetadata& md, size_t& pos) {
  int n = md.schema[pos++].num_children;
  for (int i = 0; i < n && pos < md.schema.size(); ++i) SkipSubtree(md, pos);
}

// For one leaf, a range of entries [begin, end) and the cursor into its values.
struct Span {
  size_t begin = 0;
  size_t end = 0;
  size_t value = 0;  // index of the first value in the range
};

class Assembler {
 public:
  // Values are moved out of `cols` as rows are built: every value belongs to one place in one row.
  Assembler(const std::vector<Leaf>& leaves, std::vector<ColumnData>& cols)
      : leaves_(leaves), cols_(cols) {}

  static void CollectLeaves(const Node& n, std::vector<int>& out) {
    if (n.leaf >= 0) out.push_back(n.leaf);
    for (const auto& c : n.children) CollectLeaves(c, out);
  }

  size_t CountValues(int leaf, size_t begin, size_t end) const {
    size_t c = 0;
    const auto& col = cols_[static_cast<size_t>(leaf)];
    for (size_t i = begin; i < end; ++i)
      if (col.def[i] == leaves_[static_cast<size_t>(leaf)].max_def) ++c;
    return c;
  }

  // Builds one instance of `n` (ignoring its own repetition) from the spans.
  // `spans` is indexed by leaf; only the entries of `n`'s leaves are read.
  nlohmann::json BuildOne(const Node& n, std::vector<Span>& spans) const {
    int any = FirstLeaf(n);
    if (any < 0) return nullptr;
    const Span& s = spans[any];
    if (s.begin >= s.end || cols_[static_cast<size_t>(any)].def[s.begin] < n.def) return nullptr;
    if (n.leaf >= 0) {
      auto& col = cols_[static_cast<size_t>(n.leaf)];
      if (s.value >= col.values.size()) return nullptr;
      return col.Take(s.value);
    }
    if (n.logical == "LIST" && n.children.size() == 1 && n.children[0].repetition == 2) {
      const Node& rep = n.children[0];
      nlohmann::json arr = Build(rep, spans);
      // Three-level lists wrap each element in a one-field group.
      if (rep.children.size() == 1 && rep.leaf < 0) {
        nlohmann::json flat = nlohmann::json::array();
        for (auto& e : arr) flat.push_back(e.is_object() && e.size() == 1 ? e.begin().value() : e);
        return flat;
      }
      return arr;
    }
    if (n.logical == "MAP" && n.children.size() == 1 && n.children[0].repetition == 2 &&
        n.children[0].children.size() == 2) {
      nlohmann::json arr = Build(n.children[0], spans);
      nlohmann::json obj = nlohmann::json::object();
      const std::string& kname = n.children[0].children[0].name;
      const std::string& vname = n.children[0].children[1].name;
      for (auto& kv : arr) {
        if (!kv.is_object() || !kv[kname].is_string()) continue;
        obj[kv[kname].get<std::string>()] = kv[vname];
      }
      return obj;
    }
    nlohmann::json obj = nlohmann::json::object();
    for (const auto& c : n.children) obj[c.name] = Build(c, spans);
    return obj;
  }

  // Builds `n`, an array when it is repeated.
  nlohmann::json Build(const Node& n, std::vector<Span>& spans) const {
    if (n.repetition != 2) return BuildOne(n, spans);
    std::vector<int> leaves;
    CollectLeaves(n, leaves);
    nlohmann::json arr = nlohmann::json::array();
    if (leaves.empty()) return arr;
    int any = leaves.front();
    const Span& s0 = spans[any];
    if (s0.begin >= s0.end || cols_[static_cast<size_t>(any)].def[s0.begin] < n.def) return arr;
    // Split every leaf's span into elements: a new element starts where rep <= n.rep.
    std::vector<std::vector<Span>> parts(leaves.size());
    for (size_t li = 0; li < leaves.size(); ++li) {
      const Span& s = spans[leaves[li]];
      const auto& col = cols_[static_cast<size_t>(leaves[li])];
      Span cur{s.begin, s.begin, s.value};
      for (size_t i = s.begin; i < s.end; ++i) {
        if (i > s.begin && col.rep[i] <= n.rep) {
          cur.end = i;
          parts[li].push_back(cur);
          cur = Span{i, i, cur.value + CountValues(leaves[li], cur.begin, i)};
        }
      }
      cur.end = s.end;
      parts[li].push_back(cur);
    }
    size_t elements = parts[0].size();
    for (const auto& p : parts)
      if (p.size() != elements) return arr;  // inconsistent levels: give up on this field
    for (size_t e = 0; e < elements; ++e) {
      std::vector<Span> sub(spans);
      for (size_t li = 0; li < leaves.size(); ++li) sub[leaves[li]] = parts[li][e];
      arr.push_back(BuildOne(n, sub));
    }
    return arr;
  }

  int FirstLeaf(const Node& n) const {
    if (n.leaf >= 0) return n.leaf;
    for (const auto& c : n.children) {
      int l = FirstLeaf(c);
      if (l >= 0) return l;
    }
    return -1;
  }

 private:
  const std::vector<Leaf>& leaves_;
  std::vector<ColumnData>& cols_;
};

bool Wanted(const std::vector<std::string>& skip, const std::string& name) {
  for (const auto& s : skip)
    if (s == name) return false;
  return true;
}

}  // namespace

Result<FileMetadata> ParseFooter(const std::string& tail) {
  LV_ASSIGN_OR_RETURN(RawMetadata md, DecodeFooterBytes(tail, nullptr));
  return ToPublic(md);
}

Result<FileMetadata> ReadFileMetadata(Env&, const std::string& path) {
  uint64_t size = 0;
  LV_ASSIGN_OR_RETURN(std::string tail, ReadTail(path, 64 * 1024, &size));
  if (tail.size() < 12) return Error(path + ": not a Parquet file (too short)");
  uint32_t len;
  std::memcpy(&len, tail.data() + tail.size() - 8, 4);
  if (len + 8 > tail.size()) {
    if (len + 8 > size || len > kMaxFooter) return Error(path + ": footer length exceeds file");
    LV_ASSIGN_OR_RETURN(tail, ReadTail(path, len + 8, nullptr));
  }
  auto md = DecodeFooterBytes(tail, nullptr);
  if (!md.ok()) return Error(path + ": " + md.message());
  auto out = ToPublic(*md);
  if (!out.ok()) return Error(path + ": " + out.message());
  return out;
}

Result<std::vector<nlohmann::json>> ReadRowsAsJson(Env& env, const std::string& path,
                                                   const std::vector<std::string>& fields) {
  LV_ASSIGN_OR_RETURN(std::string file, ReadWholeFile(env, path));
  return ParseRowsAsJson(file, fields, path);
}

Status ForEachRowAsJson(Env& env, const std::string& path, const std::vector<std::string>& fields,
                        const RowCallback& fn) {
  LV_ASSIGN_OR_RETURN(std::string file, ReadWholeFile(env, path));
  return ParseEachRowAsJson(file, fields, path, fn);
}

Result<std::vector<nlohmann::json>> ParseRowsAsJson(const std::string& file,
                                                    const std::vector<std::string>& fields,
                                                    const std::string& name) {
  std::vector<nlohmann::json> rows;
  LV_RETURN_IF_ERROR(ParseEachRowAsJson(file, fields, name, [&](nlohmann::json& row) {
    rows.push_back(std::move(row));
    return Status::Ok();
  }));
  return rows;
}

Status ParseEachRowAsJson(const std::string& file, const std::vector<std::string>& fields,
                          const std::string& path, const RowCallback& fn) {
  if (file.size() < 12 || file.compare(0, 4, "PAR1") != 0)
    return Error(path + ": not a Parquet file");
  auto mdr = DecodeFooterBytes(file, nullptr);
  if (!mdr.ok()) return Error(path + ": " + mdr.message());
  const RawMetadata& md = *mdr;
  // Redundant typed copies of stats and partition values are skipped: they can hold any type.
  const std::vector<std::string> skip = {"stats_parsed", "partitionValues_parsed"};
  std::vector<Leaf> leaves;
  std::vector<Node> tops;
  size_t pos = 1;
  int root_children = md.schema[0].num_children;
  for (int i = 0; i < root_children && pos < md.schema.size(); ++i) {
    const std::string& name = md.schema[pos].name;
    bool want = false;
    for (const auto& f : fields) want = want || f == name;
    if (!want) {
      SkipSubtree(md, pos);
      continue;
    }
    Node top;
    Annotate(md, pos, top, 0, 0, {}, leaves, 0);
    // Drop skipped sub-fields from the assembly tree (their leaves stay unread).
    std::function<void(Node&)> prune = [&](Node& n) {
      std::vector<Node> kept;
      for (auto& c : n.children)
        if (Wanted(skip, c.name)) {
          prune(c);
          kept.push_back(std::move(c));
        }
      n.children = std::move(kept);
    };
    prune(top);
    tops.push_back(std::move(top));
  }
  // Which leaves are still in a tree.
  std::vector<bool> used(leaves.size(), false);
  std::function<void(const Node&)> mark = [&](const Node& n) {
    if (n.leaf >= 0) used[static_cast<size_t>(n.leaf)] = true;
    for (const auto& c : n.children) mark(c);
  };
  for (const auto& t : tops) mark(t);

  // The leaves under each top-level field, once: the row loop below runs per file action.
  std::vector<std::vector<int>> top_leaves(tops.size());
  for (size_t ti = 0; ti < tops.size(); ++ti) {
    Assembler::CollectLeaves(tops[ti], top_leaves[ti]);
  }
  std::vector<Span> spans(leaves.size());
  for (const auto& rg : md.row_groups) {
    std::vector<ColumnData> cols(leaves.size());
    for (size_t li = 0; li < leaves.size(); ++li) {
      if (!used[li]) continue;
      const ColumnChunkMeta* cc = nullptr;
      for (const auto& c : rg.columns)
        if (c.path == leaves[li].path) cc = &c;
      if (!cc) return Error(path + ": no column chunk for " + leaves[li].path.back());
      Status st = ReadColumnChunk(file, *cc, leaves[li], cols[li]);
      if (!st.ok())
        return Error(path + ": column " + leaves[li].path.front() + "." + leaves[li].path.back() +
                     ": " + st.message());
      if (cols[li].def.size() != cols[li].rep.size())
        return Error(path + ": inconsistent levels in " + leaves[li].path.back());
    }
    // Rows per leaf: entries with rep == 0. Counted here, found again row by row below: as
    // stored positions they took 16 bytes a row for every leaf.
    for (size_t li = 0; li < leaves.size(); ++li) {
      if (!used[li]) continue;
      int64_t rows = std::count(cols[li].rep.begin(), cols[li].rep.end(), uint8_t{0});
      if (rows != rg.num_rows)
        return Error(path + ": column " + leaves[li].path.back() + " has " + std::to_string(rows) +
                     " rows, row group says " + std::to_string(rg.num_rows));
    }
    // Each leaf's next row: its first entry and the index of its first value.
    std::vector<Span> next(leaves.size());
    for (size_t li = 0; li < leaves.size(); ++li) {
      if (!used[li]) continue;
      const ColumnData& c = cols[li];
      while (next[li].begin < c.rep.size() && c.rep[next[li].begin] != 0)
        if (c.def[next[li].begin++] == leaves[li].max_def) ++next[li].value;
    }
    Assembler as(leaves, cols);
    for (int64_t row = 0; row < rg.num_rows; ++row) {
      for (size_t li = 0; li < leaves.size(); ++li) {
        if (!used[li]) continue;
        const ColumnData& c = cols[li];
        Span& s = next[li];
        size_t e = s.begin + 1;
        while (e < c.rep.size() && c.rep[e] != 0) ++e;
        spans[li] = Span{s.begin, e, s.value};
        for (size_t i = s.begin; i < e; ++i)
          if (c.def[i] == leaves[li].max_def) ++s.value;
        s.begin = e;
      }
      nlohmann::json obj = nlohmann::json::object();
      for (size_t ti = 0; ti < tops.size(); ++ti) {
        const Node& t = tops[ti];
        const std::vector<int>& tl = top_leaves[ti];
        if (tl.empty()) continue;
        if (t.repetition != 2) {
          // Most fields of a checkpoint row are null: BuildOne's own test, before building.
          const Span& s = spans[tl.front()];
          if (s.begin >= s.end || cols[static_cast<size_t>(tl.front())].def[s.begin] < t.def)
            continue;
        }
        nlohmann::json v = as.Build(t, spans);
        if (!v.is_null()) obj[t.name] = std::move(v);
      }
      LV_RETURN_IF_ERROR(fn(obj));
    }
  }
  return Status::Ok();
}

}  // namespace lakevault::parquet
