#version 430
// One step of a slice of the particles, and their splat into this frame's light buffer.
// With field/sim_every N the particles are cut into N slices and one slice steps each frame
// (over the N frames' time since its last step); the renderer sums the N most recent light
// buffers, so every particle shines in every frame at a 1/N of the stepping cost.
// Streaming along its route (a filament between nodes, or a petal looping out of a node),
// curl-noise flow, malfunction (fragile filaments tear into turbulence), harmony (orderly flow),
// attractors (from the flow grid). A particle that dies or escapes is reborn on a route chosen
// by a hash of its index, the frame and the seed: no other randomness, so renders repeat.
// The splat is fused in (saves a second pass over the particles): one atomic add of the particle's
// light in fixed point, order independent, so the image is byte-for-byte repeatable. Atomics are
// the dearest thing here on llvmpipe, so colour comes from a sparse pass instead (field_hue.glsl).
// Written branch-light: llvmpipe runs both sides of a branch for every SIMD group.
layout(local_size_x = 256) in;
#include "lib/hash.glsl"
#include "lib/field_common.glsl"

#include "lib/field_light.glsl"
uniform sampler2D u_flow;     // rg: curl flow, ba: attractor pull
uniform ivec2 u_size;         // accumulator (tapestry) size in pixels
uniform float u_gain;         // fixed-point weight of one particle
uniform float u_dt;          // time since this slice's last step
uniform uint  u_first;       // this frame's slice: particles [u_first, u_end)
uniform uint  u_end;
uniform uint  u_frame;
uniform uint  u_seed;
uniform float u_speed;       // stream speed along filaments (canvas heights / s)
uniform float u_curl;        // strength of the ambient curl flow
uniform float u_tension;     // pull back onto the route
uniform float u_width;       // lateral spread of a filament
uniform float u_harmony;     // 0..1 orderly flow
uniform float u_malfunction; // 0..1 tearing into turbulence
uniform float u_node_share;  // fraction of particles born on petals
uniform float u_life;        // mean particle life (s)
uniform float u_attract;     // gain on attractors
uniform float u_damp;        // velocity kept per step: exp(-dt * (0.6 + 1.4 * order)), folded on the CPU
uniform float u_packets;     // 0..1 strength of the nutrient packets travelling along filaments
uniform float u_packet_phase; // distance the packets have travelled (canvas h), modulo u_packet_spacing
uniform float u_packet_spacing; // canvas heights between packets (simulation.PACKET_SPACING)
// Loose under a heavy malfunction, a particle rides the flow as a tracer (dye in stirred water)
const float TRACER_SPEED = 0.25;    // it heads for the flow times field/flow/curl times this (canvas h / s);
                                    // u_damp bleeds some off, so it settles at about 0.8 of that
const float TRACER_RATE = 3.0;      // how fast it takes up the flow's velocity (1 / s)
const float TRACER_AGEING = 4.0;    // it ages 1 + this times faster, so strands keep tearing off the network

void main() {
    uint i = gl_GlobalInvocationID.x + u_first;
    if (i >= u_end) return;
    Particle p = load_particle(i);
    vec2 pos = p.kin.xy, vel = p.kin.zw;
    float s = p.tag.x, lane = p.tag.y, life = p.tag.w;
    int r = clamp(int(p.tag.z), 0, MAX_ROUTES - 1);
    bool newborn = life <= 0.0;

    vec4 ctrl = u_route_ctrl[r], info = u_route_info[r], ab = u_route_ends[r];
    // Fragile filaments tear first as malfunction rises (petals have fragility > 1: never).
    float torn = clamp((u_malfunction - ctrl.z + 0.25) * 3.3, 0.0, 1.0);
    // info.y is the route's speed factor divided by its length (folded on the CPU).
    s += u_dt * u_speed * info.y * (0.75 + 0.25 * abs(lane)) * (1.0 - 0.7 * torn);
    s = info.x > 0.5 ? fract(s) : s;                       // petals loop for ever
    float sc = min(s, 1.0), q = 1.0 - sc;
    vec2 tan = 2.0 * q * (ctrl.xy - ab.xy) + 2.0 * sc * (ab.zw - ctrl.xy);
    tan *= inversesqrt(dot(tan, tan) + 1e-9);
    vec2 target = q * q * ab.xy + 2.0 * q * sc * ctrl.xy + sc * sc * ab.zw
                + vec2(-tan.y, tan.x) * (lane * u_width * (1.0 + 0.5 * info.x));  // petals are wider
    float order = u_harmony * (1.0 - 0.85 * u_malfunction);
    vec4 flow = texture(u_flow, pos / vec2(u_aspect, 1.0));
    // Near a visitor the filaments loosen their grip, so the stream bends toward them.
    float lure = sqrt(dot(flow.zw, flow.zw)) * u_attract;
    float grip = order * (1.0 - torn) / (1.0 + 1.5 * lure);

    vec2 desired = tan * (u_speed * info.z) + (target - pos) * u_tension;
    // The flow pushes a particle (a force: it random-walks off its filament, the smoke of tension)
    // or, under a heavy malfunction, carries it as far as its route has lost its grip (low order, a
    // torn filament, a visitor near): a divergence-free flow then stretches the lines the particles
    // were born on into folded, torn strands with dark between them, where pushed particles spread
    // evenly into a fog.
    float loose = smoothstep(0.15, 0.45, u_malfunction) * (1.0 - grip);
    vec2 force = flow.xy * (u_curl * (1.0 + 3.0 * u_malfunction) * (1.2 - grip));
    vec2 tracer = (flow.xy * (u_curl * TRACER_SPEED) - vel) * min(TRACER_RATE, 1.0 / max(u_dt, 1e-4));
    vec2 acc = (desired - vel) * (4.0 * grip)
             + mix(force, tracer, loose) + flow.zw * u_attract;
    vel += acc * u_dt;
    vel *= u_damp;
    float sp2 = dot(vel, vel);
    vel *= sp2 > 6.25 ? 2.5 * inversesqrt(sp2) : 1.0;
    pos += vel * u_dt;
    // A newborn starts on its route, moving with the stream.
    pos = newborn ? target : pos;
    vel = newborn ? tan * (u_speed * info.z) : vel;
    life = newborn ? -life : life - u_dt * (1.0 + TRACER_AGEING * loose);

    // Death: old age, the end of a filament, or escape from the canvas. Rebirth values are
    // computed for everyone (cheap hashes) and selected, instead of branching.
    bool dead = life <= 0.0 || s >= 1.0 || pos.x < 0.0 || pos.y < 0.0 || pos.x >= u_aspect || pos.y >= 1.0;
    uint h = hash3(i, u_frame, u_seed), h2 = pcg(h);
    float r0 = float(h & 0xFFFFu) * (1.0 / 65536.0), r1 = float(h >> 16) * (1.0 / 65536.0);
    float r2 = float(h2 & 0xFFFFu) * (1.0 / 65536.0), r3 = float(h2 >> 16) * (1.0 / 65536.0);
    int petals = u_petals;
    bool on_petal = (r0 < u_node_share && petals > 0) || u_filaments == 0;
    int born_route = on_petal ? min(int(r3 * float(petals)), petals - 1)
                              : FILAMENT_BASE + min(int(r3 * float(u_filaments)), u_filaments - 1);
    float born_lane = r1 * 2.0 - 1.0;
    born_lane *= abs(born_lane);                          // denser at the core
    // Stored life is negative for a newborn: its position is set on its first step.
    float born_life = -u_life * (0.5 + r2);
    float born_s = on_petal ? r2 : r2 * 0.1;

    // The dead wait in bounds (clamped) for their rebirth, so every stored position is on the canvas.
    p.kin = vec4(dead ? clamp(pos, vec2(0.0), vec2(u_aspect, 1.0) - 1e-4) : pos, vel);
    p.tag = dead ? vec4(born_s, born_lane, float(born_route), born_life) : vec4(s, lane, float(r), life);
    store_particle(i, p);

    // Nutrient packets: brighter stretches riding the stream from node to node (filaments only; a
    // torn filament loses them). The mean brightness is kept: w^4 of a raised cosine averages 35/128.
    // info.z / info.y is the route's length (the CPU folded speed / length into info.y).
    float along = sc * info.z / max(info.y, 1e-6) - u_packet_phase * info.z;
    float wave = 0.5 + 0.5 * cos(6.2831853 * (along / u_packet_spacing + ctrl.w));
    wave *= wave;
    float packet = mix(1.0, wave * wave * (128.0 / 35.0), u_packets * (1.0 - torn) * (1.0 - info.x));
    float light = particle_light(info.w * packet, lane, life, sc, vel, u_speed);
    splat(pos, (dead || newborn) ? 0.0 : light, u_size, u_aspect, u_gain);  // newborns are not yet on their route
}
