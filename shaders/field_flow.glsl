#version 430
// The ambient flow on a coarse grid, once per frame, sampled by every particle:
// rg = curl noise (divergence free, so particles never pile up in sinks),
// ba = the pull and swirl of attractors (where visitors stand). Doing attractors here,
// per grid cell instead of per particle, keeps the particle step free of loops.
layout(local_size_x = 8, local_size_y = 8) in;
#include "lib/noise.glsl"

#define MAX_ATTRACTORS 16
layout(rgba16f, binding = 0) uniform writeonly image2D u_flow;
uniform float u_aspect;
uniform float u_scale;      // noise cells across the canvas height
uniform float u_time;       // evolving noise time
uniform float u_turbulence; // extra high-frequency octave under malfunction
uniform vec4  u_attractors[MAX_ATTRACTORS]; // x, y, strength (+ pulls, - pushes), radius
uniform int   u_attractor_count;

void main() {
    ivec2 size = imageSize(u_flow);
    ivec2 id = ivec2(gl_GlobalInvocationID.xy);
    if (id.x >= size.x || id.y >= size.y) return;
    vec2 p = (vec2(id) + 0.5) / vec2(size) * vec2(u_aspect, 1.0);
    vec2 v = curl2(p * u_scale, u_time);
    if (u_turbulence > 0.001) {
        vec4 n = gnoise_d(vec3(p * u_scale * 4.7 + 31.0, u_time * 3.1));
        v += u_turbulence * 2.5 * vec2(n.z, -n.y);
    }
    vec2 pull = vec2(0.0);
    for (int a = 0; a < u_attractor_count; ++a) {
        vec4 at = u_attractors[a];
        vec2 d = at.xy - p;
        float w = at.z * exp(-dot(d, d) / max(at.w * at.w, 1e-5));
        vec2 n = d / (length(d) + 0.02);
        pull += (n + 0.6 * vec2(-n.y, n.x)) * w;   // drawn in, and stirred around the visitor
    }
    imageStore(u_flow, id, vec4(v, pull));
}
