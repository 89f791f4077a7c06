"""The particle field on a real headless GL context: conservation, bounds, harmony vs malfunction,
attractors, determinism, and the tapestry's orientation."""

from pathlib import Path

import numpy as np
import pytest

from installation.engine import declare_all
from installation.field.renderer import TapestryRenderer
from installation.field.simulation import Attractor, ParticleField
from installation.gfx.context import headless_context
from installation.gfx.shaders import ShaderLibrary

SHADERS = Path(__file__).resolve().parents[2] / "shaders"
SIZE = (192, 108)


@pytest.fixture(scope="module")
def ctx():
    c = headless_context()
    yield c
    c.release()


def make(ctx, seed=3, particles=16384, **params):
    tree = declare_all()
    tree.set_base("field/particles", particles)
    for k, v in params.items():
        tree.set_base(k.replace("__", "/"), v)
    lib = ShaderLibrary(ctx, SHADERS)
    field = ParticleField(ctx, lib, tree, SIZE[0] / SIZE[1], seed)
    ren = TapestryRenderer(ctx, lib, tree, SIZE)
    return tree, field, ren


def run(field, ren, frames, dt=1 / 60):
    for _ in range(frames):
        field.step(dt, ren.splat_target(field.count, field.slices))
        ren.render(dt, full=field.round_started)


def test_step_conserves_particles_and_keeps_them_on_the_canvas(ctx):
    tree, field, ren = make(ctx, field__malfunction=1.0, field__flow__curl=5.0)  # the wildest flow there is
    run(field, ren, 120)
    p = field.read()
    assert p.shape == (16384, 8)
    assert np.isfinite(p).all()
    x, y = p[:, 0], p[:, 1]
    assert (x >= 0).all() and (x <= field.aspect).all()
    assert (y >= 0).all() and (y <= 1).all()
    routes = p[:, 6]
    assert (routes >= 0).all() and (routes < field.state.routes).all()
    alive = p[:, 7] > 0
    assert alive.mean() > 0.9  # nearly everyone is alive at any moment: rebirth is immediate


def test_malfunction_tears_the_flow_and_harmony_restores_it(ctx):
    _, calm, ren_a = make(ctx, field__harmony=0.9, field__malfunction=0.0)
    _, torn, ren_b = make(ctx, field__harmony=0.2, field__malfunction=0.9)
    run(calm, ren_a, 90)
    run(torn, ren_b, 90)
    assert calm.coherence() > 0.8
    assert torn.coherence() < 0.5
    assert calm.coherence() - torn.coherence() > 0.4


def test_attractor_draws_particles_to_where_a_visitor_stands(ctx):
    def particles(att):
        _, field, ren = make(ctx, field__attractors__gain=3.0)
        field.set_attractors(att)
        run(field, ren, 120)
        return field.read(), field.aspect

    def near(p, aspect, x, y):
        return (np.hypot(p[:, 0] - x * aspect, p[:, 1] - y) < 0.15).mean()

    # The visitor stands where the network is thinnest without them (the layout depends on the seed).
    p, aspect = particles([])
    spots = [(0.2, 0.8), (0.5, 0.5), (0.8, 0.2), (0.15, 0.2), (0.85, 0.85), (0.5, 0.15), (0.5, 0.85)]
    x, y = min(spots, key=lambda s: near(p, aspect, *s))
    without = near(p, aspect, x, y)
    q, _ = particles([Attractor(x, y, 2.0, 0.2)])
    assert near(q, aspect, x, y) > without * 1.3


def test_same_seed_same_frames_other_seed_other_frames(ctx):
    def frames(seed):
        _, field, ren = make(ctx, seed=seed)
        run(field, ren, 30)
        return ren.read()

    a, b, c = frames(5), frames(5), frames(6)
    assert a == b
    assert a != c


def test_tapestry_row_zero_is_the_top_of_the_canvas(ctx):
    # The nodes glow brightest; they must appear at their own y (y down), not mirrored.
    _, field, ren = make(ctx, field__nodes__share=0.6, field__nodes__drift=0.0)
    run(field, ren, 60)
    img = np.frombuffer(ren.read(), np.uint8).reshape(SIZE[1], SIZE[0], 4)[..., :3].astype(float).mean(-1)
    nodes = field.state.nodes
    cols = np.clip((nodes[:, 0] / field.aspect * SIZE[0]).astype(int), 0, SIZE[0] - 1)
    rows = np.clip((nodes[:, 1] * SIZE[1]).astype(int), 0, SIZE[1] - 1)
    mirrored = SIZE[1] - 1 - rows
    assert img[rows, cols].mean() > img[mirrored, cols].mean() + 40


def test_master_zero_is_black_and_the_network_lights_the_tapestry(ctx):
    _, field, ren = make(ctx)
    run(field, ren, 30)
    img = np.frombuffer(ren.read(), np.uint8).reshape(SIZE[1], SIZE[0], 4)
    assert img[..., :3].mean() > 5            # the default network is visibly lit
    assert (img[..., :3] > 200).any()         # with bright cores
    field.step(1 / 60, ren.splat_target(field.count))
    ren.render(1 / 60, master=0.0)
    dark = np.frombuffer(ren.read(), np.uint8).reshape(SIZE[1], SIZE[0], 4)
    assert dark[..., :3].max() == 0


def test_simulating_every_other_frame_keeps_the_look_and_the_bounds(ctx):
    def run_with(every):
        tree, field, ren = make(ctx, field__sim_every=every, field__harmony=0.9)
        run(field, ren, 60)
        img = np.frombuffer(ren.read(), np.uint8).reshape(SIZE[1], SIZE[0], 4)[..., :3].astype(float)
        return field, img

    full, img_full = run_with(1)
    half, img_half = run_with(2)
    p = half.read()
    assert (p[:, 0] >= 0).all() and (p[:, 0] <= half.aspect).all() and (p[:, 1] >= 0).all() and (p[:, 1] <= 1).all()
    assert half.coherence() > 0.8
    # Streams advance at the same speed: the same light in the same places, give or take.
    assert abs(img_half.mean() - img_full.mean()) < 0.15 * img_full.mean()
    assert np.corrcoef(img_half.ravel(), img_full.ravel())[0, 1] > 0.8


def test_changing_sim_every_live_keeps_every_particle_drawn(ctx):
    # An artist moves /tapestry/field/sim_every from a tablet mid-show: the light buffers follow,
    # and after the frame of the change every particle shines again (same brightness as before).
    tree, field, ren = make(ctx, field__sim_every=2)
    run(field, ren, 40)

    def brightness():
        return np.frombuffer(ren.read(), np.uint8).reshape(SIZE[1], SIZE[0], 4)[..., :3].mean()

    before = brightness()
    for every in (1, 3, 4, 2):
        tree.set_base("field/sim_every", every)
        run(field, ren, 12)
        assert field.slices == every and len(ren.lights) == every
        assert abs(brightness() - before) < 0.15 * before, every
    with pytest.raises(ValueError, match="slices"):
        field.step(1 / 60, ren.splat_target(field.count, 1))  # a renderer keeping the wrong number


def test_the_look_does_not_depend_on_the_frame_rate(ctx):
    # A 30 fps render must look like the live piece at 60 fps (and a live show whose frame rate
    # wanders must not pulse with it): the trail weights each frame's light by the time it covers.
    means = {}
    for fps in (30, 60):
        _, field, ren = make(ctx)
        run(field, ren, 3 * fps, dt=1 / fps)
        means[fps] = np.frombuffer(ren.read(), np.uint8).reshape(SIZE[1], SIZE[0], 4)[..., :3].mean()
    assert means[60] > 5
    assert abs(means[30] - means[60]) < 0.05 * means[60], means


def test_nutrient_packets_fade_out_before_they_would_flicker():
    """A packet passes an LED speed / 0.3 canvas h times a second: full strength up to 0.6 canvas h/s
    (2 a second), none from 0.9 (3 a second, where it would be a flicker for the flash limiter)."""
    from installation.field.simulation import packet_strength
    assert packet_strength(0.8, 0.22) == 0.8 and packet_strength(0.8, 0.6) == pytest.approx(0.8)
    assert packet_strength(0.8, 0.75) == pytest.approx(0.4) and packet_strength(0.8, 0.9) == 0.0
    assert packet_strength(1.0, 1.5) == 0.0
