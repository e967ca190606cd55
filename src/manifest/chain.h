// Incremental chains: a backup's ancestors, oldest (the full backup) first.
#pragma once

#include <string>
#include <vector>

#include "core/result.h"
#include "manifest/catalog.h"

namespace lakevault {

// The chain that ends at `id`: [full, incremental, ..., id]. Fails naming the first missing or
// unreadable link, so nothing is restored from a broken chain.
Result<std::vector<const CatalogEntry*>> ResolveChain(const Catalog& catalog,
                                                      const std::string& id);

// Ids of every backup that depends on `id` directly or through others.
std::vector<std::string> Dependents(const Catalog& catalog, const std::string& id);

}  // namespace lakevault
