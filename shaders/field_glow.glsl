#version 430
// Glow, step 2: separable Gaussian blur of the glow grid (9 taps), run once along x, once along y.
// Two channels: light, light*hue.
layout(local_size_x = 16, local_size_y = 8) in;

uniform sampler2D u_src;
uniform vec2 u_dir;       // (1, 0) or (0, 1)
uniform float u_radius;   // tap spacing in texels
layout(rg16f, binding = 0) uniform writeonly image2D u_dst;

void main() {
    ivec2 size = imageSize(u_dst);
    ivec2 id = ivec2(gl_GlobalInvocationID.xy);
    if (id.x >= size.x || id.y >= size.y) return;
    vec2 uv = (vec2(id) + 0.5) / vec2(size);
    vec2 dir = u_dir / vec2(size) * u_radius;
    const float w[5] = float[](0.227027, 0.1945946, 0.1216216, 0.054054, 0.016216);
    vec2 acc = texture(u_src, uv).rg * w[0];
    for (int k = 1; k < 5; ++k) {
        acc += texture(u_src, uv + dir * float(k)).rg * w[k];
        acc += texture(u_src, uv - dir * float(k)).rg * w[k];
    }
    imageStore(u_dst, id, vec4(acc, 0.0, 0.0));
}
