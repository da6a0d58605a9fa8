// Deliberate violation (rule exception): an exception thrown.
int checked(int n) {
    if (n < 0)
        throw 1;
    return n;
}
