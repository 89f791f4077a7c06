// A particle's light and its splat into this frame's light buffer.
// Brighter on the route's core and when fast; fading in over its first stretch of route and out
// at the end of its life. One atomic add in fixed point: order independent, so repeatable.
// The light buffer holds one uint a pixel and nothing else: on llvmpipe an atomic into a
// 4-word-a-pixel buffer measured 1.8x dearer (four times the cache footprint).

layout(std430, binding = 1) buffer Light { uint light[]; };

float particle_light(float brightness, float lane, float life, float s, vec2 vel, float speed) {
    float sp = sqrt(dot(vel, vel)) / max(speed, 0.05);
    return brightness * (0.6 + 0.4 * (1.0 - abs(lane))) * (0.7 + 0.3 * min(sp, 2.0))
         * min(life * 2.0, 1.0) * min(min(s, 1.0) * 20.0 + 0.3, 1.0);
}

void splat(vec2 pos, float value, ivec2 size, float aspect, float gain) {
    ivec2 px = clamp(ivec2(pos * (vec2(size) / vec2(aspect, 1.0))), ivec2(0), size - 1);
    uint q = uint(value * gain + 0.5);
    if (q > 0u) atomicAdd(light[uint(px.y * size.x + px.x)], q);
}
