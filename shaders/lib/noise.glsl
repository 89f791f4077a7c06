// 3D gradient noise and its curl in 2D (divergence-free flow: particles never clump in sinks).
#include "lib/hash.glsl"

vec3 grad3(ivec3 p) {
    uint h = hash3(uint(p.x) * 1u, uint(p.y) * 1u, uint(p.z) * 1u);
    vec3 g = vec3(float(h & 1023u), float((h >> 10) & 1023u), float((h >> 20) & 1023u)) / 511.5 - 1.0;
    return g;
}

// Gradient noise with analytic derivative: returns (value, d/dx, d/dy, d/dz).
vec4 gnoise_d(vec3 x) {
    ivec3 i = ivec3(floor(x));
    vec3 f = fract(x);
    vec3 u = f * f * f * (f * (f * 6.0 - 15.0) + 10.0);
    vec3 du = 30.0 * f * f * (f * (f - 2.0) + 1.0);
    vec3 ga = grad3(i + ivec3(0,0,0)), gb = grad3(i + ivec3(1,0,0));
    vec3 gc = grad3(i + ivec3(0,1,0)), gd = grad3(i + ivec3(1,1,0));
    vec3 ge = grad3(i + ivec3(0,0,1)), gf = grad3(i + ivec3(1,0,1));
    vec3 gg = grad3(i + ivec3(0,1,1)), gh = grad3(i + ivec3(1,1,1));
    float va = dot(ga, f - vec3(0,0,0)), vb = dot(gb, f - vec3(1,0,0));
    float vc = dot(gc, f - vec3(0,1,0)), vd = dot(gd, f - vec3(1,1,0));
    float ve = dot(ge, f - vec3(0,0,1)), vf = dot(gf, f - vec3(1,0,1));
    float vg = dot(gg, f - vec3(0,1,1)), vh = dot(gh, f - vec3(1,1,1));
    float k1 = vb - va, k2 = vc - va, k3 = ve - va, k4 = va - vb - vc + vd;
    float k5 = va - vc - ve + vg, k6 = va - vb - ve + vf, k7 = -va + vb + vc - vd + ve - vf - vg + vh;
    float v = va + u.x * k1 + u.y * k2 + u.z * k3 + u.x * u.y * k4 + u.y * u.z * k5 + u.z * u.x * k6
            + u.x * u.y * u.z * k7;
    vec3 d = ga + u.x * (gb - ga) + u.y * (gc - ga) + u.z * (ge - ga) + u.x * u.y * (ga - gb - gc + gd)
           + u.y * u.z * (ga - gc - ge + gg) + u.z * u.x * (ga - gb - ge + gf)
           + u.x * u.y * u.z * (-ga + gb + gc - gd + ge - gf - gg + gh)
           + du * vec3(k1 + u.y * k4 + u.z * k6 + u.y * u.z * k7,
                       k2 + u.z * k5 + u.x * k4 + u.z * u.x * k7,
                       k3 + u.x * k6 + u.y * k5 + u.x * u.y * k7);
    return vec4(v, d);
}

// Curl of a scalar potential: two octaves, evolving in z (time).
vec2 curl2(vec2 p, float t) {
    vec4 a = gnoise_d(vec3(p, t));
    vec4 b = gnoise_d(vec3(p * 2.03 + 17.1, t * 1.31 + 5.0));
    vec2 g = a.yz + 0.5 * b.yz;
    return vec2(g.y, -g.x);
}
