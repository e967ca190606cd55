// The streamed check report is the document's dump, byte for byte.
#include "check/check.h"

#include <gtest/gtest.h>

#include <sstream>

#include "support/test_util.h"

namespace lakevault {
namespace {

std::string Streamed(const CheckReport& report) {
  std::ostringstream out;
  WriteCheckReportJson(report, out);
  return out.str();
}

TEST(CheckReport, StreamedJsonIsTheDocumentsDump) {
  // Every corpus table: healthy ones, tables with missing files, unreadable logs, warnings.
  auto report = CheckLake(Env::Default(), testing::CorpusDir());
  ASSERT_TRUE(report.ok()) << report.message();
  ASSERT_GT(report->tables.size(), 10u);
  size_t with_missing = 0;
  for (const auto& t : report->tables) with_missing += t.missing_files.empty() ? 0 : 1;
  EXPECT_GT(with_missing, 0u);
  EXPECT_EQ(Streamed(*report), CheckReportToJson(*report).dump(2));

  CheckReport empty;
  EXPECT_EQ(Streamed(empty), CheckReportToJson(empty).dump(2));

  CheckReport odd;
  TableHealth t;
  t.name = "quote\"and\\back\nslash";
  t.path = "/lake/\x01ctl";
  t.rows = -5;
  t.missing_files = {"a b/\"c\".parquet", "\xc3\xa9t\xc3\xa9.parquet"};
  t.warnings = {"one"};
  odd.tables = {t, TableHealth{}};
  EXPECT_EQ(Streamed(odd), CheckReportToJson(odd).dump(2));
}

}  // namespace
}  // namespace lakevault
