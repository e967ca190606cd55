// An iterator over a container read by index, for the packed lists (delta::FileList,
// PlannedFiles) that build each element as a value when it is asked for.
#pragma once

#include <cstddef>

namespace lakevault {

template <typename Container, typename Value>
class IndexIterator {
 public:
  IndexIterator(const Container* container, size_t i) : container_(container), i_(i) {}
  Value operator*() const { return (*container_)[i_]; }
  IndexIterator& operator++() {
    ++i_;
    return *this;
  }
  bool operator==(const IndexIterator& o) const { return i_ == o.i_; }
  bool operator!=(const IndexIterator& o) const { return i_ != o.i_; }

 private:
  const Container* container_;
  size_t i_;
};

}  // namespace lakevault
