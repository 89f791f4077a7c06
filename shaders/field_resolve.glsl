#version 430
// Per pixel: fold this frame's splats into the trail (feedback with decay), clear the
// accumulator for the next frame, add last frame's glow, colour through the palette
// lookup, tone-map into the tapestry (RGBA8, display-referred).
// Accumulator and trail share one SSBO (16 bytes a pixel): plain memory is cheaper than
// image load/store on a software rasteriser.
layout(local_size_x = 16, local_size_y = 8) in;

layout(std430, binding = 1) buffer Accum { uvec4 accum[]; };  // light (fixed point), -, trail: light, light*hue
uniform sampler2D u_hue;      // quarter resolution: this frame's hue samples (weight, weight*hue)
layout(rgba8, binding = 1) uniform writeonly image2D u_tapestry;
uniform ivec2 u_size;
uniform sampler2D u_glow;     // blurred trail (light, light*hue)
uniform sampler2D u_lut;      // palette: hue -> colour (palette, fever, hue shift, saturation baked in)
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
    uvec4 a = accum[cell];
    vec2 trail = uintBitsToFloat(a.zw);
    // This frame's hue here: bilinear over the sparse hue grid (the ratio of the filtered sums is
    // the sample-weighted mean); where no sample fell nearby, the trail keeps its own colour.
    vec2 uv = (vec2(id) + 0.5) / vec2(u_size);
    vec2 h = texture(u_hue, uv).rg;
    float hue = h.x > 0.002 ? h.y / h.x : trail.y / max(trail.x, 1e-6);
    float fresh = float(a.x) * u_inv_gain;
    trail = trail * u_decay + vec2(fresh, fresh * hue);
    accum[cell] = uvec4(0u, 0u, floatBitsToUint(trail));

    vec2 glow = texture(u_glow, uv).rg * u_glow_amount;
    // Colour of the mix: mean hue of trail and glow, weighted by their light.
    vec2 lh = trail + glow;
    vec3 col = texture(u_lut, vec2(lh.y / max(lh.x, 1e-6), 0.5)).rgb;
    vec3 hdr = col * (lh.x * u_exposure) + u_ambient;
    vec3 ldr = 1.0 - exp(-hdr);          // soft shoulder: dense nodes bloom, never clip hard
    imageStore(u_tapestry, id, vec4(sqrt(ldr) * u_master, 1.0));   // gamma 2.0 encode
}
