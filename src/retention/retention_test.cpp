#include "retention/retention.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>

namespace lakevault {
namespace {

// 90 daily backups at 17:00 UTC from Thu 2026-01-01 to Tue 2026-03-31, a full every 7 days
// (Jan 1, 8, 15, ..., Mar 26), incrementals in between, all verified.
std::vector<RetentionInput> NinetyDays() {
  std::vector<RetentionInput> backups;
  TimePoint start = ParseTime("2026-01-01T17:00:00Z").value();
  for (int day = 0; day < 90; ++day) {
    RetentionInput in;
    in.created = start + std::chrono::hours(24 * day);
    in.id = "backup_" + FormatCompactStamp(in.created);
    if (day % 7 != 0) in.parent = backups.back().id;
    in.verified = true;
    backups.push_back(in);
  }
  return backups;
}

std::set<std::string> KeptDates(const std::vector<RetentionDecision>& decisions) {
  std::set<std::string> kept;
  for (const auto& d : decisions)
    if (d.keep) kept.insert(d.id.substr(7, 8));
  return kept;
}

void ExpectNoKeptBackupLosesItsParent(const std::vector<RetentionInput>& backups,
                                      const std::vector<RetentionDecision>& decisions) {
  std::map<std::string, bool> keep;
  for (const auto& d : decisions) keep[d.id] = d.keep;
  for (const auto& b : backups)
    if (keep[b.id] && !b.parent.empty())
      EXPECT_TRUE(keep[b.parent]) << b.id << " lost " << b.parent;
}

TEST(RetentionTest, DailyWeeklyMonthlyOverNinetyDaysMatchesHandComputedSet) {
  auto backups = NinetyDays();
  RetentionPolicy policy;
  policy.days = 0;
  policy.keep_daily = 7;
  policy.keep_weekly = 4;
  policy.keep_monthly = 3;
  auto decisions = PlanRetention(backups, policy, ParseTime("2026-03-31T18:00:00Z").value());
  // daily: Mar 25-31; weekly (ISO weeks): Mar 31, 29, 22, 15; monthly: Mar 31, Feb 28, Jan 31;
  // their chains: Mar 19-24 (full Mar 19 for Mar 25), Mar 26 is a full, Mar 12-14 for Mar 15,
  // Feb 26-27 for Feb 28, Jan 29-30 for Jan 31.
  std::set<std::string> expected = {"20260129", "20260130", "20260131", "20260226", "20260227",
                                    "20260228", "20260312", "20260313", "20260314", "20260315"};
  for (int d = 19; d <= 31; ++d) expected.insert("202603" + std::to_string(d));
  EXPECT_EQ(KeptDates(decisions), expected);
  ExpectNoKeptBackupLosesItsParent(backups, decisions);
  for (const auto& d : decisions)
    if (d.id == "backup_20260129_170000") EXPECT_NE(d.reason.find("needed by"), std::string::npos);
}

TEST(RetentionTest, DaysKeepsTheWindowAndTheChainsReachingIntoIt) {
  auto backups = NinetyDays();
  RetentionPolicy policy;  // days: 30
  auto decisions = PlanRetention(backups, policy, ParseTime("2026-03-31T18:00:00Z").value());
  std::set<std::string> expected = {"20260226", "20260227", "20260228", "20260301"};
  for (int d = 2; d <= 31; ++d) expected.insert(fmt::format("202603{:02d}", d));
  EXPECT_EQ(KeptDates(decisions), expected);
  ExpectNoKeptBackupLosesItsParent(backups, decisions);
}

TEST(RetentionTest, NewestVerifiedBackupIsKeptWhateverThePolicy) {
  auto backups = NinetyDays();
  for (auto& b : backups) b.verified = false;
  backups[40].verified = true;  // Feb 10, an incremental on the full of Feb 5
  RetentionPolicy policy;
  policy.days = 1;
  auto decisions = PlanRetention(backups, policy, ParseTime("2026-06-01T00:00:00Z").value());
  auto kept = KeptDates(decisions);
  EXPECT_EQ(kept, (std::set<std::string>{"20260205", "20260206", "20260207", "20260208", "20260209",
                                         "20260210"}));
}

TEST(RetentionTest, NoRuleKeepsEverything) {
  auto backups = NinetyDays();
  RetentionPolicy policy;
  policy.days = 0;
  auto decisions = PlanRetention(backups, policy, Clock::now());
  EXPECT_EQ(KeptDates(decisions).size(), 90u);
}

TEST(RetentionTest, KeepLastCountsBackupsNotDays) {
  auto backups = NinetyDays();
  RetentionPolicy policy;
  policy.days = 0;
  policy.keep_last = 2;
  auto decisions = PlanRetention(backups, policy, ParseTime("2026-03-31T18:00:00Z").value());
  // Mar 30, 31 and their chain back to the full of Mar 26.
  EXPECT_EQ(KeptDates(decisions), (std::set<std::string>{"20260326", "20260327", "20260328",
                                                         "20260329", "20260330", "20260331"}));
}

}  // namespace
}  // namespace lakevault
