#include "manifest/chain.h"

#include <algorithm>
#include <set>

namespace lakevault {

Result<std::vector<const CatalogEntry*>> ResolveChain(const Catalog& catalog,
                                                      const std::string& id) {
  std::vector<const CatalogEntry*> chain;
  std::set<std::string> seen;
  std::string current = id;
  while (true) {
    const CatalogEntry* entry = nullptr;
    for (const auto& e : catalog.entries())
      if (e.id == current) entry = &e;
    if (entry == nullptr) {
      if (current == id) return Error("no backup '" + id + "' in " + catalog.dir());
      return Error("backup " + chain.back()->id + " needs its parent " + current +
                   ", which is missing from " + catalog.dir() +
                   " (restore an earlier full backup, or take a new full backup)");
    }
    if (!entry->manifest) return Error("backup " + current + ": " + entry->manifest_error);
    if (!seen.insert(current).second) return Error("backup " + id + " has a cyclic parent chain");
    chain.push_back(entry);
    if (entry->manifest->kind == "full") break;
    if (entry->manifest->parent.empty())
      return Error("incremental backup " + current + " names no parent");
    current = entry->manifest->parent;
  }
  std::reverse(chain.begin(), chain.end());
  return chain;
}

std::vector<std::string> Dependents(const Catalog& catalog, const std::string& id) {
  std::set<std::string> found = {id};
  bool grew = true;
  while (grew) {
    grew = false;
    for (const auto& e : catalog.entries())
      if (e.manifest && !e.manifest->parent.empty() && found.count(e.manifest->parent) &&
          found.insert(e.id).second)
        grew = true;
  }
  found.erase(id);
  return {found.begin(), found.end()};
}

}  // namespace lakevault
