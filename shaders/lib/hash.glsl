// Integer hashing for deterministic randomness on the GPU (PCG-style).
// Same inputs give the same bits on every frame and every run.
uint pcg(uint v) {
    uint state = v * 747796405u + 2891336453u;
    uint word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}
uint hash3(uint a, uint b, uint c) { return pcg(a ^ pcg(b ^ pcg(c))); }
float u01(uint h) { return float(h >> 8) * (1.0 / 16777216.0); }
vec2 u01x2(uint h) { return vec2(u01(h), u01(pcg(h))); }
