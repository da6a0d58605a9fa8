// Deliberate violation (rule unbounded): a loop bound known only at run time, without LOOP_TRIPCOUNT.
int sum(const int* values, int n) {
    int total = 0;
    for (int i = 0; i < n; ++i) {
#pragma HLS PIPELINE II = 1
        total += values[i];
    }
    return total;
}
