#version 430
// Colour grid, step 2: turn this frame's sparse hue samples (integer sums) into a float texture
// that the resolve can sample with one bilinear fetch, and clear the sums for the next frame.
layout(local_size_x = 16, local_size_y = 8) in;

layout(std430, binding = 2) buffer HueGrid { uvec2 grid[]; };   // weight, weight*hue (fixed point)
layout(rg16f, binding = 0) uniform writeonly image2D u_hue;     // weight, weight*hue (floats)
uniform ivec2 u_grid;

void main() {
    ivec2 id = ivec2(gl_GlobalInvocationID.xy);
    if (id.x >= u_grid.x || id.y >= u_grid.y) return;
    uint cell = uint(id.y * u_grid.x + id.x);
    vec2 g = vec2(grid[cell]) * (1.0 / 256.0);
    grid[cell] = uvec2(0u);
    imageStore(u_hue, id, vec4(g, 0.0, 0.0));
}
