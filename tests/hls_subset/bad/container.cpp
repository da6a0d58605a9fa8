// Deliberate violation (rule container): a standard container.
#include <vector>
int sum(const std::vector<int>& values) {
    int total = 0;
    for (int i = 0; i < 16; ++i)
        total += values[i];
    return total;
}
