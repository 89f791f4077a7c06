#version 430
// Per pixel: sum this frame's light (the SLICES most recent light buffers: one slice of the
// particles steps each frame), fold it into the trail (feedback with decay), clear the light
// buffer that the next frame's slice splats into, add last frame's glow, colour through the
// palette lookup, tone-map into the tapestry (RGBA8, display-referred).
// Plain buffers rather than images (cheaper on a software rasteriser), and as few stores as
// possible: on llvmpipe every stored word is a scatter.
layout(local_size_x = 16, local_size_y = 8) in;
#ifndef SLICES
#define SLICES 1
#endif

layout(std430, binding = 1) buffer Light0 { uint light0[]; };   // read, then cleared for the next frame
#if SLICES > 1
layout(std430, binding = 4) readonly buffer Light1 { uint light1[]; };
#endif
#if SLICES > 2
layout(std430, binding = 5) readonly buffer Light2 { uint light2[]; };
#endif
#if SLICES > 3
layout(std430, binding = 6) readonly buffer Light3 { uint light3[]; };
#endif
layout(std430, binding = 3) buffer Trail { vec2 trail[]; };     // light, light*hue
uniform sampler2D u_hue;      // quarter resolution: this round's hue samples (weight, weight*hue)
layout(rgba8, binding = 1) uniform writeonly image2D u_tapestry;
uniform ivec2 u_size;
uniform sampler2D u_glow;     // blurred trail (light, light*hue)
uniform sampler2D u_lut;      // palette, 256 x 1: hue -> colour (palette, fever, hue shift, saturation baked in)
uniform float u_decay;        // trail kept per frame
uniform float u_inv_gain;     // 1 / fixed-point gain
uniform float u_exposure;
uniform float u_glow_amount;
uniform float u_master;       // show master x blackout x schedule
uniform vec3  u_ambient;      // faint background so the piece never reads as off

void main() {
    ivec2 id = ivec2(gl_GlobalInvocationID.xy);
    if (id.x >= u_size.x || id.y >= u_size.y) return;
    uint cell = uint(id.y * u_size.x + id.x);
    uint q = light0[cell];
#if SLICES > 1
    q += light1[cell];
#endif
#if SLICES > 2
    q += light2[cell];
#endif
#if SLICES > 3
    q += light3[cell];
#endif
    light0[cell] = 0u;
    vec2 tr = trail[cell];
    // This frame's hue here: bilinear over the sparse hue grid (the ratio of the filtered sums is
    // the sample-weighted mean); where no sample fell nearby, the trail keeps its own colour.
    vec2 uv = (vec2(id) + 0.5) / vec2(u_size);
    vec2 h = texture(u_hue, uv).rg;
    float hue = h.x > 0.002 ? h.y / h.x : tr.y / max(tr.x, 1e-6);
    float fresh = float(q) * u_inv_gain;
    tr = tr * u_decay + vec2(fresh, fresh * hue);
    trail[cell] = tr;

    vec2 glow = texture(u_glow, uv).rg * u_glow_amount;
    // Colour of the mix: mean hue of trail and glow, weighted by their light. 256 palette entries
    // are finer than the eye can tell, so a plain fetch (no filtering: 17% cheaper here).
    vec2 lh = tr + glow;
    vec3 col = texelFetch(u_lut, ivec2(clamp(int(lh.y / max(lh.x, 1e-6) * 256.0), 0, 255), 0), 0).rgb;
    vec3 hdr = col * (lh.x * u_exposure) + u_ambient;
    // Highlights roll off with their colour: a per-channel shoulder alone drives every channel of a
    // dense core to 1 (a flat white blob); mixed with a shoulder on luminance that keeps the channels'
    // ratios, a core stays its palette's colour, brightest but not clipped.
    float lum = dot(hdr, vec3(0.2126, 0.7152, 0.0722));
    vec3 ldr = min(mix(1.0 - exp(-hdr), hdr * ((1.0 - exp(-lum)) / max(lum, 1e-6)), 0.6), vec3(1.0));
    imageStore(u_tapestry, id, vec4(sqrt(ldr) * u_master, 1.0));   // gamma 2.0 encode
}
