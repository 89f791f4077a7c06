#version 430
// The preview window: the tapestry as a full-window quad, then the LEDs as round dots
// (u_mode 1) drawn over it, coloured as they will look.
#if defined VERTEX_SHADER
uniform int u_mode;
uniform float u_dot;          // LED dot size in pixels
in vec2 in_pos;               // mode 0: quad corner in -1..1; mode 1: LED canvas position 0..1
in vec3 in_color;
out vec2 v_uv;
out vec3 v_color;
void main() {
    if (u_mode == 0) {
        v_uv = vec2(in_pos.x * 0.5 + 0.5, 0.5 - in_pos.y * 0.5);   // row 0 of the tapestry is the top
        gl_Position = vec4(in_pos, 0.0, 1.0);
    } else {
        v_color = in_color;
        gl_Position = vec4(in_pos.x * 2.0 - 1.0, 1.0 - in_pos.y * 2.0, 0.0, 1.0);
        gl_PointSize = u_dot;
    }
}
#endif

#if defined FRAGMENT_SHADER
uniform int u_mode;
uniform sampler2D u_tapestry;
uniform float u_dim;          // dim the tapestry under the LEDs so the dots read
in vec2 v_uv;
in vec3 v_color;
out vec4 f_color;
void main() {
    if (u_mode == 0) {
        f_color = vec4(texture(u_tapestry, v_uv).rgb * u_dim, 1.0);
    } else {
        vec2 d = gl_PointCoord * 2.0 - 1.0;
        float r = dot(d, d);
        if (r > 1.0) discard;
        f_color = vec4(mix(v_color, vec3(0.15), smoothstep(0.6, 1.0, r) * 0.6), 1.0);
    }
}
#endif
