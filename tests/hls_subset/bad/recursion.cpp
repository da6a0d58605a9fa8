// Deliberate violation (rule recursion): a function calling itself.
int depth(int n) {
    return n <= 0 ? 0 : 1 + depth(n - 1);
}
