// Deliberate violation (rule heap): a buffer from the heap.
#include <cstdint>
std::int32_t* make_buffer(int n) {
    return new std::int32_t[16];
}
