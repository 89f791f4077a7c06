// Cosine palettes (a + b * cos(2pi (c t + d))): smooth, cheap, and easy to declare as data.
uniform vec3 u_pal[4];   // the preset's palette: a, b, c, d
uniform vec3 u_fever[4]; // the malfunction palette it shifts toward
vec3 cospal(vec3 pal[4], float t) {
    return clamp(pal[0] + pal[1] * cos(6.2831853 * (pal[2] * t + pal[3])), 0.0, 4.0);
}
vec3 palette(float t, float fever) {
    return mix(cospal(u_pal, t), cospal(u_fever, t), clamp(fever, 0.0, 1.0));
}
