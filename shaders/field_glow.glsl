#version 430
// Glow at low resolution: pass 0 box-downsamples the trail (4x4 pixels of the accumulator
// SSBO), passes 1 and 2 blur it horizontally and vertically (separable Gaussian, 9 taps).
// Two channels: light, light*hue.
layout(local_size_x = 16, local_size_y = 8) in;

layout(std430, binding = 1) buffer Accum { uvec4 accum[]; };
uniform ivec2 u_full;      // accumulator size
uniform int u_pass;
uniform sampler2D u_src;
layout(rg16f, binding = 0) uniform writeonly image2D u_dst;
uniform float u_radius;   // tap spacing in destination texels

void main() {
    ivec2 size = imageSize(u_dst);
    ivec2 id = ivec2(gl_GlobalInvocationID.xy);
    if (id.x >= size.x || id.y >= size.y) return;
    vec2 acc = vec2(0.0);
    if (u_pass == 0) {
        ivec2 o = id * 4;
        for (int y = 0; y < 4; ++y)
            for (int x = 0; x < 4; ++x) {
                ivec2 q = min(o + ivec2(x, y), u_full - 1);
                acc += uintBitsToFloat(accum[q.y * u_full.x + q.x].zw);
            }
        acc *= 1.0 / 16.0;
    } else {
        vec2 uv = (vec2(id) + 0.5) / vec2(size);
        vec2 dir = (u_pass == 1 ? vec2(1.0, 0.0) : vec2(0.0, 1.0)) / vec2(size) * u_radius;
        const float w[5] = float[](0.227027, 0.1945946, 0.1216216, 0.054054, 0.016216);
        acc = texture(u_src, uv).rg * w[0];
        for (int k = 1; k < 5; ++k) {
            acc += texture(u_src, uv + dir * float(k)).rg * w[k];
            acc += texture(u_src, uv - dir * float(k)).rg * w[k];
        }
    }
    imageStore(u_dst, id, vec4(acc, 0.0, 0.0));
}
