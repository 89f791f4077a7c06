#version 430
// Benchmark baseline only: the naive way to draw the field, one GL_POINT per particle with
// additive blending into a float framebuffer (same light and hue channels as the splat).
#if defined VERTEX_SHADER
#include "lib/field_common.glsl"
out vec2 v_light;
void main() {
    Particle p = load_particle(uint(gl_VertexID));
    float alive = p.tag.w > 0.0 ? 1.0 : 0.0;
    float hue = u_route_ctrl[int(p.tag.z)].w;
    v_light = vec2(alive, alive * hue);
    vec2 ndc = p.kin.xy / vec2(u_aspect, 1.0) * 2.0 - 1.0;
    gl_Position = vec4(ndc.x, -ndc.y, 0.0, 1.0);
    gl_PointSize = 1.0;
}
#endif
#if defined FRAGMENT_SHADER
in vec2 v_light;
out vec2 f_light;
void main() { f_light = v_light; }
#endif
