// Deliberate violation (rule float): floating point on the fixed-point path.
int scale(int value) {
    const double gain = 0.5;
    return static_cast<int>(value * gain);
}
