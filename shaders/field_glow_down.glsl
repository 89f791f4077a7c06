#version 430
// Glow, step 1: box-downsample the trail (4x4 pixels of the trail buffer) to the glow grid.
// Two channels: light, light*hue. (Separate from the blur: llvmpipe would run both bodies of a branch.)
layout(local_size_x = 16, local_size_y = 8) in;

layout(std430, binding = 3) readonly buffer Trail { vec2 trail[]; };  // light, light*hue
uniform ivec2 u_full;      // tapestry size
layout(rg16f, binding = 0) uniform writeonly image2D u_dst;

void main() {
    ivec2 size = imageSize(u_dst);
    ivec2 id = ivec2(gl_GlobalInvocationID.xy);
    if (id.x >= size.x || id.y >= size.y) return;
    vec2 acc = vec2(0.0);
    ivec2 o = id * 4;
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) {
            ivec2 q = min(o + ivec2(x, y), u_full - 1);
            acc += trail[q.y * u_full.x + q.x];
        }
    imageStore(u_dst, id, vec4(acc * (1.0 / 16.0), 0.0, 0.0));
}
