#version 430
// Area-average the tapestry over every LED's footprint: one thread per LED.
// Footprint = parallelogram centre +/- a +/- b (canvas units; a along the strip,
// b across), covered by NA x NB taps about one texel apart (at most 1.5), read
// with bilinear filtering, so a feature moving across the footprint fades in and
// out smoothly instead of popping at one texel (no shimmer).
//
// The host (installation/fixtures/sampler.py) prepends three defines:
//   NA, NB   taps per axis for this dispatch's LEDs, or 0: read them per LED
//            (LEDs are grouped by tap counts, so most dispatches have constant
//            loop bounds that the compiler unrolls -- loops with per-lane
//            bounds cost about twice as much on llvmpipe);
//   LINEAR   0: write display-referred colours; 1: also apply per-LED gamma,
//            white balance x brightness and the master level (LED drive levels);
//   COLORS   1: no texture: read each LED's display-referred colour from the
//            Source buffer (test patterns, mapping codes) and correct it the
//            same way, so gamma and white balance live only here.
// Tap positions are precomputed per texture size: p0 = first tap, da/db = steps.

layout(local_size_x = 128) in;


struct Led {
    vec4 p;   // p0.xy, da.xy
    vec4 q;   // db.xy, gamma (0: the uniform default), output index (uint bits)
    vec4 s;   // white x brightness r, g, b, tap counts na | nb << 8 (uint bits)
};
layout(std430, binding = 0) readonly buffer Leds { Led leds[]; };
layout(std430, binding = 1) writeonly buffer Colors { float rgb[]; };
#if COLORS
layout(std430, binding = 2) readonly buffer Source { float src[]; };   // by LED index, 3 floats each
#endif

uniform sampler2D tapestry;               // (u, v) == canvas (x, y); row 0 = top
uniform uint first;                       // this dispatch's LEDs: records first .. first + count - 1
uniform uint count;
uniform float gamma_default;
uniform float master;

void main() {
    uint g = gl_GlobalInvocationID.x;
    if (g >= count) return;
    Led led = leds[first + g];
    uint o = 3u * floatBitsToUint(led.q.w);
#if COLORS
    vec3 sum = clamp(vec3(src[o], src[o + 1u], src[o + 2u]), 0.0, 1.0);
#else
    vec2 row = led.p.xy, da = led.p.zw, db = led.q.xy;
#if NA > 0
    const int na = NA, nb = NB;
#else
    uint taps = floatBitsToUint(led.s.w);
    int na = int(taps & 255u), nb = int(taps >> 8u);
#endif
    vec3 sum = vec3(0.0);
    for (int j = 0; j < nb; ++j) {
        vec2 p = row;
        for (int k = 0; k < na; ++k) {
            sum += textureLod(tapestry, p, 0.0).rgb;
            p += da;
        }
        row += db;
    }
    sum *= 1.0 / float(na * nb);
#endif
#if LINEAR
    float gm = led.q.z > 0.0 ? led.q.z : gamma_default;
    // pow via exp2/log2 is not exact at the ends: keep 0 at 0 and 1 at 1
    vec3 lin = pow(max(sum, vec3(1e-30)), vec3(gm));
    lin = mix(lin, vec3(0.0), lessThanEqual(sum, vec3(0.0)));
    lin = mix(lin, vec3(1.0), greaterThanEqual(sum, vec3(1.0)));
    sum = lin * led.s.rgb * master;
#endif
    rgb[o] = sum.r;
    rgb[o + 1u] = sum.g;
    rgb[o + 2u] = sum.b;
}
