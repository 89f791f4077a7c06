#version 430
// The video frame on the GPU: scale the tapestry to the output size (bilinear) and convert to
// planar YUV 4:2:0, BT.709 limited range, packed four bytes to a uint, ready for the encoder.
// Doing this here saves a CPU resize and a CPU colour conversion per frame (the dearest steps
// of a headless render on a two-core machine). One invocation writes an 8x2 block of pixels.
layout(local_size_x = 8, local_size_y = 8) in;

layout(std430, binding = 3) writeonly buffer Yuv { uint yuv[]; };
uniform sampler2D u_src;      // the tapestry (row 0 = top), display-referred RGB
uniform ivec2 u_out;          // output size; width a multiple of 8, height even

float luma(vec3 c) { return dot(c, vec3(0.2126, 0.7152, 0.0722)); }
uint byte(float v) { return uint(clamp(floor(v + 0.5), 0.0, 255.0)); }

void main() {
    ivec2 b = ivec2(gl_GlobalInvocationID.xy);          // block index
    if (b.x * 8 >= u_out.x || b.y * 2 >= u_out.y) return;
    vec2 inv = 1.0 / vec2(u_out);
    uint yrow[4];
    vec3 chroma[4];
    for (int k = 0; k < 4; ++k) chroma[k] = vec3(0.0);
    for (int r = 0; r < 2; ++r) {
        uint lo = 0u, hi = 0u;
        for (int x = 0; x < 8; ++x) {
            ivec2 p = ivec2(b.x * 8 + x, b.y * 2 + r);
            vec3 c = clamp(texture(u_src, (vec2(p) + 0.5) * inv).rgb, 0.0, 1.0);
            chroma[x >> 1] += c;
            uint y = byte(16.0 + 219.0 * luma(c));
            if (x < 4) lo |= y << (8 * x); else hi |= y << (8 * (x - 4));
        }
        uint row = uint(b.y * 2 + r) * uint(u_out.x / 4) + uint(b.x * 2);
        yuv[row] = lo;
        yuv[row + 1u] = hi;
    }
    uint u = 0u, v = 0u;
    for (int k = 0; k < 4; ++k) {
        vec3 c = chroma[k] * 0.25;
        float yl = luma(c);
        u |= byte(128.0 + 224.0 * (c.b - yl) / 1.8556) << (8 * k);
        v |= byte(128.0 + 224.0 * (c.r - yl) / 1.5748) << (8 * k);
    }
    uint ysize = uint(u_out.x * u_out.y / 4);
    uint cstride = uint(u_out.x / 8);
    uint cidx = uint(b.y) * cstride + uint(b.x);
    yuv[ysize + cidx] = u;
    yuv[ysize + ysize / 4u + cidx] = v;
}
