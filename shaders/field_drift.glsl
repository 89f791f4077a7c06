#version 430
// Between two simulation steps (field/sim_every > 1): every particle drifts along its velocity
// and splats its light, without the forces. About a third of the cost of a full step, and at
// 60 fps a straight line for a frame or two cannot be told from the curve.
layout(local_size_x = 256) in;
#include "lib/field_common.glsl"

layout(std430, binding = 1) buffer Accum { uvec4 accum[]; };
#include "lib/field_light.glsl"
uniform ivec2 u_size;
uniform float u_gain;
uniform float u_dt;
uniform float u_speed;

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= uint(u_count)) return;
    Particle p = particles[i];
    bool alive = p.tag.w > 0.0;
    vec2 pos = clamp(p.kin.xy + p.kin.zw * u_dt, vec2(0.0), vec2(u_aspect, 1.0) - 1e-4);
    pos = alive ? pos : p.kin.xy;
    particles[i].kin.xy = pos;
    int r = clamp(int(p.tag.z), 0, max(u_routes - 1, 0));
    float light = particle_light(u_route_info[r].w, p.tag.y, p.tag.w, p.tag.x, p.kin.zw, u_speed);
    splat(pos, alive ? light : 0.0, u_size, u_aspect, u_gain);
}
