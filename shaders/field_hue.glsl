#version 430
// Colour, sparsely: every STRIDE-th particle (a different one each frame) adds its weight and
// weight x hue to a quarter-resolution grid. The resolve colours each pixel's light by this grid,
// so the full-resolution splat needs one atomic per particle instead of two. The grid is small
// enough to stay in cache, and trails average the sampling over time.
layout(local_size_x = 256) in;
#include "lib/field_common.glsl"

layout(std430, binding = 2) buffer HueGrid { uvec2 grid[]; };   // weight, weight*hue (fixed point)
uniform ivec2 u_grid;          // grid size in cells
uniform uint  u_stride;
uniform uint  u_offset;        // which particle of each STRIDE group this frame
uniform float u_speed;
uniform float u_malfunction;

void main() {
    uint i = gl_GlobalInvocationID.x * u_stride + u_offset;
    if (i >= uint(u_count)) return;
    Particle p = load_particle(i);
    int r = clamp(int(p.tag.z), 0, MAX_ROUTES - 1);
    float sp = sqrt(dot(p.kin.zw, p.kin.zw)) / max(u_speed, 0.05);
    // Under malfunction the fast, torn-loose particles run hot.
    float hue = fract(u_route_ctrl[r].w + 0.08 * p.tag.y + 0.3 * u_malfunction * clamp(sp - 0.8, 0.0, 1.0));
    uint w = p.tag.w > 0.0 ? 256u : 0u;
    ivec2 c = clamp(ivec2(p.kin.xy * (vec2(u_grid) / vec2(u_aspect, 1.0))), ivec2(0), u_grid - 1);
    uint cell = uint(c.y * u_grid.x + c.x);
    if (w > 0u) {
        atomicAdd(grid[cell].x, w);
        atomicAdd(grid[cell].y, uint(float(w) * hue + 0.5));
    }
}
