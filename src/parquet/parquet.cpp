// Parquet reading for Delta checkpoints: the thrift footer is decoded field by field with
// libthrift's compact protocol (no generated code: we only need a handful of fields and must
// tolerate every writer's extras), pages are read and decompressed as they are consumed
// (page_stream.h), values decoded
// from PLAIN and dictionary encodings, and nested rows reassembled from repetition and
// definition levels.
#include "parquet/parquet.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <thrift/protocol/TCompactProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <memory>
#include <utility>

#include "parquet/page_stream.h"

namespace lakevault::parquet {
namespace {

using apache::thrift::TException;
using apache::thrift::protocol::TCompactProtocolT;
using apache::thrift::protocol::TType;
using apache::thrift::transport::TMemoryBuffer;
using Proto = TCompactProtocolT<TMemoryBuffer>;

constexpr size_t kMaxFooter = 256u << 20;
// A page header is a few dozen bytes plus the page's statistics, which can hold long min/max
// values: its buffer grows to this before a header that does not parse is called malformed.
constexpr size_t kMaxPageHeader = 256u << 20;

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

// The footer and the 8 bytes after it (its length and "PAR1"), for DecodeFooterBytes. A length
// that cannot be right leaves only those 8 bytes, for DecodeFooterBytes to refuse.
Result<std::string> ReadFooterBytes(RandomAccessFile& file) {
  const std::string& path = file.path();
  if (file.size() < 12) return Error(path + ": not a Parquet file (too short)");
  std::string tail(8, '\0');
  LV_ASSIGN_OR_RETURN(size_t got, file.ReadAt(file.size() - 8, tail.data(), 8));
  if (got < 8) return Error(path + ": unexpected end of file");
  uint32_t len;
  std::memcpy(&len, tail.data(), 4);
  if (tail.compare(4, 4, "PAR1") == 0 && len <= kMaxFooter && len + 8 <= file.size()) {
    tail.assign(len + 8, '\0');
    LV_ASSIGN_OR_RETURN(got, file.ReadAt(file.size() - len - 8, tail.data(), len + 8));
    if (got < len + 8) return Error(path + ": unexpected end of file");
  }
  return tail;
}

// ---------------------------------------------------------------- value decoding

// A leaf column's entries for one batch of rows: levels per entry and the non-null values in
// order. A batch is a few thousand rows, so a big column never has all its values decoded at once.
struct ColumnData {
  std::vector<uint8_t> rep;
  std::vector<uint8_t> def;
  std::vector<nlohmann::json> values;  // one per entry with def == max_def

  // Value `i`, moved out: every value belongs to one place in one row.
  nlohmann::json Take(size_t i) { return std::move(values[i]); }
  void Clear() {
    rep.clear();
    def.clear();
    values.clear();
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

int BitWidth(int max_level) {
  int w = 0;
  while ((1 << w) <= max_level) ++w;
  return w;
}

// The RLE / bit-packing hybrid used for levels and dictionary indices, read one value at a time
// from bytes it owns: a page's levels are a few KB encoded, and were a byte a value decoded.
class HybridReader {
 public:
  HybridReader() = default;
  HybridReader(const HybridReader&) = delete;
  HybridReader& operator=(const HybridReader&) = delete;

  void Reset(std::string bytes, int bit_width) {
    data_ = std::move(bytes);
    width_ = bit_width;
    Rewind();
  }
  // Back to the first value.
  void Rewind() {
    in_ = ByteCursor(reinterpret_cast<const uint8_t*>(data_.data()), data_.size());
    rle_left_ = 0;
    packed_left_ = 0;
  }
  Status Next(uint32_t* v) {
    if (rle_left_ == 0 && packed_left_ == 0) LV_RETURN_IF_ERROR(NextRun());
    if (rle_left_ > 0) {
      --rle_left_;
      *v = rle_value_;
      return Status::Ok();
    }
    uint32_t value = 0;
    for (int b = 0; b < width_; ++b, ++bit_) {
      size_t byte = static_cast<size_t>(bit_ >> 3);
      if (byte >= packed_bytes_) return Error("truncated bit-packed run");
      value |= static_cast<uint32_t>((packed_[byte] >> (bit_ & 7)) & 1) << b;
    }
    --packed_left_;
    *v = value;
    return Status::Ok();
  }

 private:
  Status NextRun() {
    if (width_ < 0 || width_ > 32) return Error("bad bit width " + std::to_string(width_));
    uint64_t header;
    if (!in_.Varint(&header)) return Error("truncated RLE run");
    if (header & 1) {
      uint64_t groups = header >> 1;
      if (groups > (1u << 28)) return Error("bit-packed run too long");
      size_t bytes = static_cast<size_t>(groups) * static_cast<size_t>(width_);
      if (!in_.Take(bytes, &packed_)) {
        // Writers may end a last partial group early; take what is there.
        bytes = in_.left();
        in_.Take(bytes, &packed_);
      }
      packed_bytes_ = bytes;
      packed_left_ = static_cast<size_t>(groups) * 8;
      bit_ = 0;
      if (packed_left_ == 0) return NextRun();
      return Status::Ok();
    }
    uint64_t run = header >> 1;
    size_t width = static_cast<size_t>((width_ + 7) / 8);
    const uint8_t* p;
    if (!in_.Take(width, &p)) return Error("truncated RLE value");
    rle_value_ = 0;
    for (size_t i = 0; i < width; ++i) rle_value_ |= static_cast<uint32_t>(p[i]) << (8 * i);
    if (run == 0) return Error("empty RLE run");
    rle_left_ = run;
    return Status::Ok();
  }

  std::string data_;
  ByteCursor in_{nullptr, 0};
  int width_ = 0;
  uint64_t rle_left_ = 0;
  uint32_t rle_value_ = 0;
  size_t packed_left_ = 0;
  const uint8_t* packed_ = nullptr;
  size_t packed_bytes_ = 0;
  uint64_t bit_ = 0;
};

// One PLAIN BYTE_ARRAY value: a 4-byte length, then the bytes (`*p`, `*n`).
Status TakeByteArray(ByteCursor& in, const uint8_t** p, uint32_t* n) {
  if (!in.Take(4, p)) return Error("truncated BYTE_ARRAY length");
  std::memcpy(n, *p, 4);
  if (!in.Take(*n, p)) return Error("truncated BYTE_ARRAY value");
  return Status::Ok();
}

Status DecodePlain(ByteCursor& in, const Leaf& leaf, size_t count,
                   std::vector<nlohmann::json>& out) {
  const uint8_t* p = nullptr;
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
        uint32_t n = 0;
        LV_RETURN_IF_ERROR(TakeByteArray(in, &p, &n));
        out.push_back(std::string(reinterpret_cast<const char*>(p), n));
      }
      return Status::Ok();
    default:
      return Error("unsupported physical type " + std::to_string(leaf.physical));
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

// Reads one column chunk a page at a time and hands out its entries a batch of rows at a time:
// only the current page's levels and a window of its decompressed bytes are held.
class ColumnReader {
 public:
  // With `discard`, values are read and checked but not kept (StreamOptions::unreturned).
  ColumnReader(RandomAccessFile& file, const ColumnChunkMeta& cc, const Leaf& leaf, size_t piece,
               bool discard)
      : file_(file), cc_(cc), leaf_(leaf), piece_(piece), discard_(discard) {}

  Status Start() {
    int64_t start =
        cc_.dictionary_page_offset > 0 && cc_.dictionary_page_offset < cc_.data_page_offset
            ? cc_.dictionary_page_offset
            : cc_.data_page_offset;
    if (start < 4 || static_cast<uint64_t>(start) >= file_.size())
      return Error("column chunk offset out of range");
    pos_ = static_cast<uint64_t>(start);
    return Status::Ok();
  }

  // Appends to `out` the entries of up to `rows` more rows; `*got` says how many there were.
  Status ReadRows(size_t rows, ColumnData& out, size_t* got) {
    size_t n = 0;
    while (true) {
      if (entry_ == page_entries_) {
        if (seen_ >= cc_.num_values) break;
        LV_RETURN_IF_ERROR(NextPage());
        continue;
      }
      if (!have_entry_) {
        LV_RETURN_IF_ERROR(NextLevel(rep_levels_, leaf_.max_rep, &rep_));
        LV_RETURN_IF_ERROR(NextLevel(def_levels_, leaf_.max_def, &def_));
        have_entry_ = true;
      }
      if (rep_ == 0) {
        if (n == rows) break;
        ++n;
        started_ = true;
      }
      if (started_) {
        out.rep.push_back(rep_);
        out.def.push_back(def_);
      }
      // Entries before the first row's start belong to no row; their values are passed over.
      if (def_ == leaf_.max_def) {
        LV_RETURN_IF_ERROR(TakeValue(out.values));
        if (!started_ && !discard_) out.values.pop_back();
      }
      have_entry_ = false;
      ++entry_;
    }
    *got = n;
    return Status::Ok();
  }

  // Whether every entry of the chunk has been handed out.
  bool AtEnd() const { return entry_ == page_entries_ && seen_ >= cc_.num_values; }

 private:
  Result<PageHeader> ReadPageHeader() {
    uint64_t left = file_.size() - pos_;
    for (size_t want = 512;; want *= 8) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(want, left));
      std::string buf(n, '\0');
      LV_ASSIGN_OR_RETURN(size_t read, file_.ReadAt(pos_, buf.data(), n));
      if (read < n) return Error("column chunk runs past the end of the file");
      try {
        ThriftReader r(reinterpret_cast<const uint8_t*>(buf.data()), n);
        PageHeader h = DecodePageHeader(r);
        pos_ += r.consumed();
        return h;
      } catch (const std::exception& e) {
        // Cut off by the buffer, or malformed: only a buffer reaching the end of the file tells.
        if (n == left || want >= kMaxPageHeader)
          return Error(std::string("malformed page header: ") + e.what());
      }
    }
  }

  static Status NextLevel(HybridReader& levels, int max, uint8_t* out) {
    if (max == 0) {
      *out = 0;
      return Status::Ok();
    }
    uint32_t l;
    LV_RETURN_IF_ERROR(levels.Next(&l));
    if (l > static_cast<uint32_t>(max)) return Error("level out of range");
    *out = static_cast<uint8_t>(l);
    return Status::Ok();
  }

  // Sets `levels` up to read the page's levels of one kind: in a v1 page a 4-byte length and the
  // encoded levels open the decompressed body, in a v2 page they precede it uncompressed.
  Status StartLevels(const PageHeader& h, int max, int v2_offset, int v2_len,
                     HybridReader& levels) {
    if (max == 0) return Status::Ok();
    if (h.type == 0) {
      LV_ASSIGN_OR_RETURN(const uint8_t* p, values_->Take(4));
      if (!p) return Error("truncated level length");
      uint32_t len;
      std::memcpy(&len, p, 4);
      LV_ASSIGN_OR_RETURN(p, values_->Take(len));
      if (!p) return Error("truncated levels");
      levels.Reset(std::string(reinterpret_cast<const char*>(p), len), BitWidth(max));
    } else {
      levels.Reset(v2_levels_.substr(static_cast<size_t>(v2_offset), static_cast<size_t>(v2_len)),
                   BitWidth(max));
    }
    return Status::Ok();
  }

  // Reads page headers up to the next data page, taking any dictionary page on the way, and
  // prepares that page's levels and values.
  Status NextPage() {
    while (true) {
      if (pos_ >= file_.size()) return Error("column chunk runs past the end of the file");
      LV_ASSIGN_OR_RETURN(PageHeader h, ReadPageHeader());
      if (h.compressed < 0 || h.uncompressed < 0 ||
          static_cast<uint64_t>(h.compressed) > file_.size() - pos_)
        return Error("page size out of range");
      uint64_t body = pos_;
      pos_ += static_cast<uint64_t>(h.compressed);
      if (h.type == 2) {  // dictionary page
        LV_ASSIGN_OR_RETURN(auto stream, PageStream::Open(file_, body, h.compressed, cc_.codec,
                                                          h.uncompressed, piece_));
        LV_ASSIGN_OR_RETURN(std::string raw, stream->TakeRest());
        ByteCursor in(reinterpret_cast<const uint8_t*>(raw.data()), raw.size());
        dictionary_.clear();
        if (h.num_values < 0) return Error("bad dictionary size");
        LV_RETURN_IF_ERROR(DecodePlain(in, leaf_, static_cast<size_t>(h.num_values), dictionary_));
        continue;
      }
      if (h.type != 0 && h.type != 3) continue;  // index pages and unknown pages carry no values
      if (h.num_values < 0) return Error("bad page value count");
      size_t n = static_cast<size_t>(h.num_values);
      uint64_t values_at = body, values_size = static_cast<uint64_t>(h.compressed);
      uint64_t values_uncompressed = static_cast<uint64_t>(h.uncompressed);
      int codec = cc_.codec;
      if (h.type == 3) {
        size_t lv = static_cast<size_t>(h.def_bytes) + static_cast<size_t>(h.rep_bytes);
        if (h.def_bytes < 0 || h.rep_bytes < 0 || lv > static_cast<size_t>(h.compressed) ||
            lv > static_cast<size_t>(h.uncompressed))
          return Error("bad v2 level sizes");
        v2_levels_.assign(lv, '\0');
        LV_ASSIGN_OR_RETURN(size_t read, file_.ReadAt(body, v2_levels_.data(), lv));
        if (read < lv) return Error("column chunk runs past the end of the file");
        values_at += lv;
        values_size -= lv;
        values_uncompressed -= lv;
        if (!h.v2_compressed) codec = 0;
      }
      LV_ASSIGN_OR_RETURN(values_, PageStream::Open(file_, values_at, values_size, codec,
                                                    values_uncompressed, piece_));
      LV_RETURN_IF_ERROR(StartLevels(h, leaf_.max_rep, 0, h.rep_bytes, rep_levels_));
      LV_RETURN_IF_ERROR(StartLevels(h, leaf_.max_def, h.rep_bytes, h.def_bytes, def_levels_));
      entry_ = 0;
      page_entries_ = n;
      have_entry_ = false;
      // The values the page holds, from a pass over a copy of its definition levels.
      size_t present = 0;
      if (leaf_.max_def == 0) {
        present = n;
      } else {
        for (size_t i = 0; i < n; ++i) {
          uint8_t d = 0;
          LV_RETURN_IF_ERROR(NextLevel(def_levels_, leaf_.max_def, &d));
          if (d == leaf_.max_def) ++present;
        }
        def_levels_.Rewind();
      }
      encoding_ = h.encoding;
      indices_.clear();
      next_index_ = 0;
      bools_.clear();
      next_bool_ = 0;
      if (encoding_ == 0 && leaf_.physical == 0) {  // BOOLEAN, bit-packed LSB first
        LV_ASSIGN_OR_RETURN(const uint8_t* p, values_->Take((present + 7) / 8));
        if (!p) return Error("truncated BOOLEAN values");
        bools_.assign(reinterpret_cast<const char*>(p), (present + 7) / 8);
      } else if (encoding_ == 2 || encoding_ == 8) {
        if (present > 0) {
          LV_ASSIGN_OR_RETURN(const uint8_t* p, values_->Take(1));
          if (!p) return Error("truncated dictionary index width");
          int width = p[0];
          LV_ASSIGN_OR_RETURN(std::string rest, values_->TakeRest());
          HybridReader in;
          in.Reset(std::move(rest), width);
          indices_.resize(present);
          for (uint32_t& i : indices_) {
            LV_RETURN_IF_ERROR(in.Next(&i));
            if (i >= dictionary_.size()) return Error("dictionary index out of range");
          }
        }
      } else if (encoding_ != 0) {
        return Error("unsupported encoding " + std::to_string(encoding_));
      }
      seen_ += h.num_values;
      return Status::Ok();
    }
  }

  Status TakeValue(std::vector<nlohmann::json>& out) {
    if (encoding_ == 2 || encoding_ == 8) {
      size_t i = indices_[next_index_++];
      if (!discard_) out.push_back(dictionary_[i]);
      return Status::Ok();
    }
    const uint8_t* p;
    switch (leaf_.physical) {
      case 0:
        if (discard_) {
          ++next_bool_;
          return Status::Ok();
        }
        out.push_back(((static_cast<uint8_t>(bools_[next_bool_ >> 3]) >> (next_bool_ & 7)) & 1) !=
                      0);
        ++next_bool_;
        return Status::Ok();
      case 6: {
        LV_ASSIGN_OR_RETURN(p, values_->Take(4));
        if (!p) return Error("truncated BYTE_ARRAY length");
        uint32_t n;
        std::memcpy(&n, p, 4);
        LV_ASSIGN_OR_RETURN(p, values_->Take(n));
        if (!p) return Error("truncated BYTE_ARRAY value");
        if (discard_) return Status::Ok();
        out.push_back(std::string(reinterpret_cast<const char*>(p), n));
        return Status::Ok();
      }
      default: {
        size_t width = leaf_.physical == 1 || leaf_.physical == 4   ? 4
                       : leaf_.physical == 2 || leaf_.physical == 5 ? 8
                       : leaf_.physical == 3                        ? 12
                       : leaf_.physical == 7 ? static_cast<size_t>(std::max(0, leaf_.type_length))
                                             : 0;
        if (width == 0 && leaf_.physical != 7)
          return Error("unsupported physical type " + std::to_string(leaf_.physical));
        LV_ASSIGN_OR_RETURN(p, values_->Take(width));
        if (!p) return Error("truncated fixed-width values");
        if (discard_) return Status::Ok();
        ByteCursor in(p, width);
        return DecodePlain(in, leaf_, 1, out);
      }
    }
  }

  RandomAccessFile& file_;
  const ColumnChunkMeta& cc_;
  const Leaf& leaf_;
  size_t piece_;
  bool discard_;
  uint64_t pos_ = 0;  // the next page header
  int64_t seen_ = 0;  // entries of the data pages read so far
  bool started_ = false;
  std::vector<nlohmann::json> dictionary_;
  std::string v2_levels_;
  // The current data page.
  HybridReader rep_levels_, def_levels_;
  size_t page_entries_ = 0;
  size_t entry_ = 0;
  bool have_entry_ = false;  // rep_ and def_ hold entry_'s levels, read ahead to find a row's end
  uint8_t rep_ = 0, def_ = 0;
  int encoding_ = 0;
  std::unique_ptr<PageStream> values_;
  std::vector<uint32_t> indices_;
  size_t next_index_ = 0;
  std::string bools_;
  size_t next_bool_ = 0;
};

// ---------------------------------------------------------------- record assembly

struct Node {
  std::string name;
  int repetition = 0;  // 0 required, 1 optional, 2 repeated
  std::string logical;
  int def = 0;
  int rep = 0;
  int leaf = -1;  // index into leaves for leaf nodes
  // The logical type's two shapes the assembly treats apart, decided once: compared as strings
  // they cost a few percent of a checkpoint's decoding, per node of every row.
  bool is_list = false, is_map = false;
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
  node.is_list = node.logical == "LIST";
  node.is_map = node.logical == "MAP";
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
    if (n.is_list && n.children.size() == 1 && n.children[0].repetition == 2) {
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
    if (n.is_map && n.children.size() == 1 && n.children[0].repetition == 2 &&
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

Result<FileMetadata> ReadFileMetadata(Env& env, const std::string& path) {
  LV_ASSIGN_OR_RETURN(auto file, env.NewRandomAccessFile(path));
  LV_ASSIGN_OR_RETURN(std::string tail, ReadFooterBytes(*file));
  auto md = DecodeFooterBytes(tail, nullptr);
  if (!md.ok()) return Error(path + ": " + md.message());
  auto out = ToPublic(*md);
  if (!out.ok()) return Error(path + ": " + out.message());
  return out;
}

Result<std::vector<nlohmann::json>> ReadRowsAsJson(Env& env, const std::string& path,
                                                   const std::vector<std::string>& fields) {
  std::vector<nlohmann::json> rows;
  LV_RETURN_IF_ERROR(ForEachRowAsJson(env, path, fields, [&](nlohmann::json& row) {
    rows.push_back(std::move(row));
    return Status::Ok();
  }));
  return rows;
}

Status ForEachRowAsJson(Env& env, const std::string& path, const std::vector<std::string>& fields,
                        const RowCallback& fn, const StreamOptions& options) {
  LV_ASSIGN_OR_RETURN(auto file, env.NewRandomAccessFile(path));
  return ForEachRowAsJson(*file, fields, fn, options);
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
                          const std::string& name, const RowCallback& fn) {
  return ForEachRowAsJson(*NewMemoryFile(file, name), fields, fn);
}

Status ForEachRowAsJson(RandomAccessFile& file, const std::vector<std::string>& fields,
                        const RowCallback& fn, const StreamOptions& options) {
  const std::string& path = file.path();
  char magic[4] = {};
  if (file.size() < 12) return Error(path + ": not a Parquet file");
  LV_ASSIGN_OR_RETURN(size_t got, file.ReadAt(0, magic, 4));
  if (got < 4 || std::memcmp(magic, "PAR1", 4) != 0) return Error(path + ": not a Parquet file");
  LV_ASSIGN_OR_RETURN(std::string tail, ReadFooterBytes(file));
  auto mdr = DecodeFooterBytes(tail, nullptr);
  if (!mdr.ok()) return Error(path + ": " + mdr.message());
  const RawMetadata& md = *mdr;
  // Redundant typed copies of stats and partition values are skipped: they can hold any type.
  const std::vector<std::string> skip = {"stats_parsed", "partitionValues_parsed"};
  std::vector<Leaf> leaves;
  std::vector<Node> tops;
  std::vector<Node> checked_only;  // StreamOptions::unreturned
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
    // Unreturned sub-fields leave the tree too, but their leaves are still read and checked.
    std::vector<Node> kept;
    for (auto& c : top.children) {
      bool unreturned = false;
      for (const auto& u : options.unreturned)
        unreturned = unreturned || u == top.name + "." + c.name;
      (unreturned ? checked_only : kept).push_back(std::move(c));
    }
    top.children = std::move(kept);
    tops.push_back(std::move(top));
  }
  // Which leaves are still in a tree.
  std::vector<bool> used(leaves.size(), false);
  std::function<void(const Node&)> mark = [&](const Node& n) {
    if (n.leaf >= 0) used[static_cast<size_t>(n.leaf)] = true;
    for (const auto& c : n.children) mark(c);
  };
  for (const auto& t : tops) mark(t);
  std::vector<bool> discard(leaves.size(), false);
  std::function<void(const Node&)> mark_discarded = [&](const Node& n) {
    if (n.leaf >= 0)
      used[static_cast<size_t>(n.leaf)] = discard[static_cast<size_t>(n.leaf)] = true;
    for (const auto& c : n.children) mark_discarded(c);
  };
  for (const auto& n : checked_only) mark_discarded(n);

  // The leaves under each top-level field, once: the row loop below runs per file action.
  std::vector<std::vector<int>> top_leaves(tops.size());
  for (size_t ti = 0; ti < tops.size(); ++ti) {
    Assembler::CollectLeaves(tops[ti], top_leaves[ti]);
  }
  std::vector<Span> spans(leaves.size());
  const size_t batch_rows = std::max<size_t>(options.rows_per_batch, 1);
  std::vector<ColumnData> cols(leaves.size());
  auto column_error = [&](size_t li, const std::string& what) {
    return Error(path + ": column " + leaves[li].path.front() + "." + leaves[li].path.back() +
                 ": " + what);
  };
  for (const auto& rg : md.row_groups) {
    std::vector<std::unique_ptr<ColumnReader>> readers(leaves.size());
    for (size_t li = 0; li < leaves.size(); ++li) {
      if (!used[li]) continue;
      const ColumnChunkMeta* cc = nullptr;
      for (const auto& c : rg.columns)
        if (c.path == leaves[li].path) cc = &c;
      if (!cc) return Error(path + ": no column chunk for " + leaves[li].path.back());
      readers[li] =
          std::make_unique<ColumnReader>(file, *cc, leaves[li], options.read_piece, discard[li]);
      Status st = readers[li]->Start();
      if (!st.ok()) return column_error(li, st.message());
    }
    if (rg.num_rows < 0) return Error(path + ": negative row count in a row group");
    for (int64_t done = 0; done < rg.num_rows;) {
      size_t want = static_cast<size_t>(std::min<int64_t>(rg.num_rows - done, batch_rows));
      for (size_t li = 0; li < leaves.size(); ++li) {
        if (!used[li]) continue;
        cols[li].Clear();
        size_t got = 0;
        Status st = readers[li]->ReadRows(want, cols[li], &got);
        if (!st.ok()) return column_error(li, st.message());
        if (got != want)
          return Error(path + ": column " + leaves[li].path.back() + " has " +
                       std::to_string(done + static_cast<int64_t>(got)) + " rows, row group says " +
                       std::to_string(rg.num_rows));
      }
      // Each leaf's next row: its first entry and the index of its first value.
      std::vector<Span> next(leaves.size());
      Assembler as(leaves, cols);
      for (size_t row = 0; row < want; ++row) {
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
      done += static_cast<int64_t>(want);
    }
    for (size_t li = 0; li < leaves.size(); ++li) {
      if (!used[li] || readers[li]->AtEnd()) continue;
      // More entries than rows: counted to the end, as the error has always said.
      int64_t rows = rg.num_rows;
      while (true) {
        cols[li].Clear();
        size_t got = 0;
        Status st = readers[li]->ReadRows(batch_rows, cols[li], &got);
        if (!st.ok()) return column_error(li, st.message());
        rows += static_cast<int64_t>(got);
        if (got < batch_rows) break;
      }
      if (rows != rg.num_rows)
        return Error(path + ": column " + leaves[li].path.back() + " has " + std::to_string(rows) +
                     " rows, row group says " + std::to_string(rg.num_rows));
    }
  }
  return Status::Ok();
}

}  // namespace lakevault::parquet
