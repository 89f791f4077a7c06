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

// Stored in 16 bytes, not 32: on llvmpipe every stored word is a scalar load or store per lane, and
// halving them took 8% off the step. Position: unorm16 of the canvas (1/100 px at 360 lines);
// velocity: half floats; s: unorm24 (a slow stream still advances along a long route) with the
// route (MAX_ROUTES = 256) in the top 8 bits; lane: snorm16; life: snorm16 of +-LIFE_RANGE s
// (2 ms steps). installation/field/simulation.py packs and unpacks the same layout.
layout(std430, binding = 0) buffer Particles { uvec4 particles[]; };
#define LIFE_RANGE 64.0

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
// Stable slots (installation/field/network.py): petals of node i at i*5.., filaments from FILAMENT_BASE.
#define FILAMENT_BASE 160
uniform int   u_petals;                  // petal slots in use: [0, u_petals)
uniform int   u_filaments;               // filament slots in use: [FILAMENT_BASE, FILAMENT_BASE + u_filaments)

Particle load_particle(uint i) {
    uvec4 q = particles[i];
    vec2 ll = unpackSnorm2x16(q.w);
    return Particle(vec4(unpackUnorm2x16(q.x) * vec2(u_aspect, 1.0), unpackHalf2x16(q.y)),
                    vec4(float(q.z & 0xFFFFFFu) / 16777215.0, ll.x, float(q.z >> 24), ll.y * LIFE_RANGE));
}

void store_particle(uint i, Particle p) {
    uint s24 = uint(roundEven(clamp(p.tag.x, 0.0, 1.0) * 16777215.0));
    particles[i] = uvec4(packUnorm2x16(p.kin.xy / vec2(u_aspect, 1.0)), packHalf2x16(p.kin.zw),
                         s24 | ((uint(p.tag.z) & 0xFFu) << 24),
                         packSnorm2x16(vec2(p.tag.y, p.tag.w / LIFE_RANGE)));
}

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
