// Deliberate violation (rule unbounded): a while loop of unknown latency.
int count_bits(unsigned value) {
    int bits = 0;
    while (value != 0) {
        bits += value & 1;
        value >>= 1;
    }
    return bits;
}
