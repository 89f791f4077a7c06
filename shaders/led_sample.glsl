#version 430
// Area-average the tapestry over every LED's footprint: one thread per LED.
// Footprint = parallelogram centre +/- a +/- b (canvas units; a along the strip,
// b across).  Taps are spread about one texel apart over it and read with
// bilinear filtering, so a feature moving across the footprint fades in and out
// smoothly instead of popping at one texel (no shimmer).
layout(local_size_x = 256) in;

struct Led { vec4 ca; vec4 b; };          // ca = (cx, cy, ax, ay), b = (bx, by, -, -)
layout(std430, binding = 0) readonly buffer Leds { Led leds[]; };
layout(std430, binding = 1) writeonly buffer Colors { float rgb[]; };

uniform sampler2D tapestry;               // (u, v) == canvas (x, y); row 0 = top
uniform uint count;
uniform int max_taps;                     // per axis

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= count) return;
    Led led = leds[i];
    vec2 c = led.ca.xy, a = led.ca.zw, bb = led.b.xy;
    vec2 size = vec2(textureSize(tapestry, 0));
    // about one tap per texel of footprint (taps at most 1.5 texels apart, so bilinear taps still
    // overlap and a moving edge fades through the footprint instead of stepping)
    int na = clamp(int(ceil(2.0 * length(a * size) - 0.5)), 1, max_taps);
    int nb = clamp(int(ceil(2.0 * length(bb * size) - 0.5)), 1, max_taps);
    vec3 sum = vec3(0.0);
    for (int j = 0; j < nb; ++j) {
        float t = (float(j) + 0.5) / float(nb) * 2.0 - 1.0;
        vec2 row = c + bb * t;
        for (int k = 0; k < na; ++k) {
            float s = (float(k) + 0.5) / float(na) * 2.0 - 1.0;
            sum += texture(tapestry, row + a * s).rgb;
        }
    }
    sum /= float(na * nb);
    rgb[3u * i] = sum.r;
    rgb[3u * i + 1u] = sum.g;
    rgb[3u * i + 2u] = sum.b;
}
