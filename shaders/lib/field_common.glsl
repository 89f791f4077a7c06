// Shared declarations of the Nutrient Network field: particle layout and the route table.
// Canvas space: x in [0, aspect], y in [0, 1], y pointing down (row 0 of the tapestry is the top).
//
// Every particle follows a route: a quadratic Bezier. Filaments run between two nodes; petals
// loop out of a node and back into it (the glowing clusters). One route table and one code path
// for both: on a software rasteriser every branch of a shader costs as if taken.

struct Particle {
    vec4 kin;   // x, y, vx, vy
    vec4 tag;   // s (0..1 along the route), lane (-1..1 across it), route index, life (s; <= 0: newborn)
};

layout(std430, binding = 0) buffer Particles { Particle particles[]; };

#define MAX_ROUTES 256
uniform int   u_count;
uniform float u_aspect;
// The route table lives in a uniform buffer (written once per frame): 12 KB would overflow the
// default uniform block on some drivers.
layout(std140, binding = 0) uniform Routes {
    vec4 u_route_ends[MAX_ROUTES];  // ax, ay, bx, by
    vec4 u_route_ctrl[MAX_ROUTES];  // bow point x, y; fragility 0..1; hue 0..1
    vec4 u_route_info[MAX_ROUTES];  // loops (0/1), speed factor / length, speed factor, brightness
};
uniform int   u_filaments;               // routes [0, u_filaments) are filaments, the rest petals
uniform int   u_routes;

vec2 route_point(int r, float s) {
    vec4 ab = u_route_ends[r];
    vec2 c = u_route_ctrl[r].xy;
    float q = 1.0 - s;
    return q * q * ab.xy + 2.0 * q * s * c + s * s * ab.zw;
}
vec2 route_tangent(int r, float s) {
    vec4 ab = u_route_ends[r];
    vec2 c = u_route_ctrl[r].xy;
    return 2.0 * (1.0 - s) * (c - ab.xy) + 2.0 * s * (ab.zw - c);
}
