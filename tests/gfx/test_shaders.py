"""The shader library on a real headless GL context: includes, errors that name the right file and line,
hot reload that keeps the last good program, and every shipped shader compiling.

Programs write into an SSBO so that "which program is running" is checked by its output.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from installation.gfx.shaders import MAX_INCLUDE_DEPTH, ShaderError, ShaderLibrary

SHIPPED = Path(__file__).resolve().parents[2] / "shaders"
ENGINE_COMPUTE = ["field_flow.glsl", "field_step.glsl", "field_resolve.glsl", "field_glow.glsl"]

HEAD = "#version 430\nlayout(local_size_x = 1) in;\nlayout(std430, binding = 0) buffer Out { float v[]; };\n"
_stamp = itertools.count(1)


@pytest.fixture
def root(tmp_path) -> Path:
    d = tmp_path / "shaders"
    (d / "lib").mkdir(parents=True)
    return d


@pytest.fixture
def lib(ctx, root):
    s = ShaderLibrary(ctx, root)
    yield s
    s.release()


def put(root: Path, rel: str, text: str) -> Path:
    """Write a shader file with a distinct mtime (an editor's save a moment later), whatever the fs granularity."""
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    ns = 1_700_000_000_000_000_000 + next(_stamp) * 1_000_000_000
    os.utime(p, ns=(ns, ns))
    return p


def outputs(ctx, prog, n: int = 2) -> list[float]:
    buf = ctx.buffer(np.full(n, -1.0, np.float32).tobytes())
    buf.bind_to_storage_buffer(0)
    prog.run(1)
    ctx.finish()
    out = np.frombuffer(buf.read(), np.float32).tolist()
    buf.release()
    return out


def shader_error(fn) -> ShaderError:
    with pytest.raises(ShaderError) as exc:
        fn()
    return exc.value


# -- includes -----------------------------------------------------------------

def test_nested_includes_resolved(ctx, root, lib):
    put(root, "lib/b.glsl", "float fb() { return 2.5; }\n")
    put(root, "lib/a.glsl", '#include "lib/b.glsl"\nfloat fa() { return fb() + 1.0; }\n')
    put(root, "main.glsl", HEAD + '#include "lib/a.glsl"\nvoid main() { v[0] = fa(); v[1] = fb(); }\n')
    assert outputs(ctx, lib.compute("main.glsl")) == [3.5, 2.5]
    assert lib.source("main.glsl").files == [root / "main.glsl", root / "lib/a.glsl", root / "lib/b.glsl"]
    assert lib.compute("main.glsl") is lib.compute("main.glsl")  # cached


def test_defines_reach_the_program(ctx, root):
    put(root, "main.glsl", HEAD + "void main() { v[0] = GAIN; v[1] = float(TAPS); }\n")
    lib = ShaderLibrary(ctx, root, defines={"GAIN": "0.25", "TAPS": "9"})
    assert outputs(ctx, lib.compute("main.glsl")) == [0.25, 9.0]
    lib.release()


def test_include_depth_limit(ctx, root, lib):
    def chain(n: int) -> None:
        for i in range(n):
            nxt = f'#include "lib/d{i + 1}.glsl"\n' if i + 1 < n else ""
            put(root, f"lib/d{i}.glsl", nxt + f"float f{i}() {{ return {float(i)}; }}\n")
        put(root, f"main{n}.glsl", HEAD + f'#include "lib/d0.glsl"\nvoid main() {{ v[0] = f{n - 1}(); }}\n')

    chain(MAX_INCLUDE_DEPTH)
    assert outputs(ctx, lib.compute(f"main{MAX_INCLUDE_DEPTH}.glsl"), 1) == [MAX_INCLUDE_DEPTH - 1.0]
    chain(MAX_INCLUDE_DEPTH + 1)
    err = shader_error(lambda: lib.compute(f"main{MAX_INCLUDE_DEPTH + 1}.glsl"))
    assert f"nested deeper than {MAX_INCLUDE_DEPTH}" in str(err)
    assert err.file == f"shaders/lib/d{MAX_INCLUDE_DEPTH - 1}.glsl" and err.line == 1


def test_include_cycle(root, lib):
    put(root, "lib/a.glsl", '// a\n#include "lib/b.glsl"\n')
    put(root, "lib/b.glsl", '#include "lib/a.glsl"\n')
    put(root, "main.glsl", HEAD + '#include "lib/a.glsl"\nvoid main() {}\n')
    err = shader_error(lambda: lib.compute("main.glsl"))
    assert "a cycle?" in str(err)
    assert (err.file, err.line) in {("shaders/lib/a.glsl", 2), ("shaders/lib/b.glsl", 1)}
    assert str(err).startswith(f"{err.file}:{err.line}: ")
    put(root, "self.glsl", HEAD + '#include "self.glsl"\nvoid main() {}\n')
    assert "a cycle?" in str(shader_error(lambda: lib.compute("self.glsl")))


@pytest.mark.parametrize("target", ["../secret.glsl", "lib/../../secret.glsl", "{abs}"])
def test_include_outside_the_directory_refused(root, lib, target):
    secret = root.parent / "secret.glsl"
    secret.write_text("float secret() { return 1.0; }\n")
    target = target.replace("{abs}", str(secret))
    put(root, "main.glsl", HEAD + f'#include "{target}"\nvoid main() {{}}\n')
    err = shader_error(lambda: lib.compute("main.glsl"))
    assert f"#include outside the shader directory: {target}" in str(err)
    assert (err.file, err.line) == ("shaders/main.glsl", 4)


def test_missing_include_names_the_including_line(root, lib):
    put(root, "lib/a.glsl", '// a\n\n#include "lib/nope.glsl"\n')
    put(root, "main.glsl", HEAD + '#include "lib/a.glsl"\nvoid main() {}\n')
    err = shader_error(lambda: lib.compute("main.glsl"))
    assert str(err).startswith("shaders/lib/a.glsl:3: cannot read included file shaders/lib/nope.glsl")


def test_missing_program(lib):
    err = shader_error(lambda: lib.compute("nope.glsl"))
    assert err.file == "shaders/nope.glsl" and "cannot read shader" in str(err)


# -- compile errors name file and line ---------------------------------------------

def test_error_in_main_file_after_includes(root, lib):
    put(root, "lib/a.glsl", "// one\n// two\nfloat fa() { return 1.0; }\n")
    put(root, "main.glsl", HEAD + '#include "lib/a.glsl"\n\nvoid main() {\n    v[0] = undefined_thing;\n}\n')
    err = shader_error(lambda: lib.compute("main.glsl"))
    assert (err.file, err.line) == ("shaders/main.glsl", 7)
    assert str(err).startswith("shaders/main.glsl:7: ") and "undefined_thing" in str(err)


def test_error_in_main_file_without_includes(root, lib):
    put(root, "main.glsl", HEAD + "void main() {\n    v[0] = 1.0\n}\n")
    err = shader_error(lambda: lib.compute("main.glsl"))
    assert err.file == "shaders/main.glsl" and err.line in (5, 6)  # drivers point at the ';' or the next token
    assert "syntax error" in str(err)


def test_error_in_included_file_after_its_own_include(root, lib):
    put(root, "lib/leaf.glsl", "float leaf() { return 1.0; }\n")
    put(root, "lib/mid.glsl", '#include "lib/leaf.glsl"\n// x\nfloat mid() { return leaf() + oops; }\n')
    put(root, "main.glsl", HEAD + '#include "lib/mid.glsl"\nvoid main() { v[0] = mid(); }\n')
    err = shader_error(lambda: lib.compute("main.glsl"))
    assert (err.file, err.line) == ("shaders/lib/mid.glsl", 3) and "oops" in str(err)


@pytest.mark.parametrize("nested", [False, True])
def test_syntax_error_in_included_file_names_that_file(root, lib, nested):
    put(root, "lib/a.glsl", "// a\nfloat fa() { return 1.0; }\n")
    put(root, "lib/bad.glsl", "// line 1\n// line 2\nfloat fb() { return 1.0 }\n")
    if nested:
        put(root, "lib/mid.glsl", '// mid\n#include "lib/bad.glsl"\n')
        inc = '#include "lib/a.glsl"\n#include "lib/mid.glsl"\n'
    else:
        inc = '#include "lib/a.glsl"\n#include "lib/bad.glsl"\n'
    put(root, "main.glsl", HEAD + inc + "void main() {}\n")
    err = shader_error(lambda: lib.compute("main.glsl"))
    assert (err.file, err.line) == ("shaders/lib/bad.glsl", 3), str(err)
    assert str(err).startswith("shaders/lib/bad.glsl:3: ") and "syntax error" in str(err)


# -- hot reload -----------------------------------------------------------------------

def valued(x: float) -> str:
    return HEAD + f"void main() {{ v[0] = {x}; v[1] = 7.0; }}\n"


def test_reload_keeps_last_good_program_then_picks_up_the_fix(ctx, root, lib):
    put(root, "main.glsl", valued(1.0))
    old = lib.compute("main.glsl")
    assert outputs(ctx, old) == [1.0, 7.0]
    assert lib.reload() == [] and lib.compute("main.glsl") is old  # nothing changed on disk

    put(root, "main.glsl", HEAD + "void main() {\n    v[0] = 2.0\n}\n")  # the artist saves a typo
    errors = lib.reload()
    assert len(errors) == 1 and errors[0].file == "shaders/main.glsl" and errors[0].line in (5, 6)
    assert lib.compute("main.glsl") is old
    assert outputs(ctx, lib.compute("main.glsl")) == [1.0, 7.0]  # the show goes on with the old program
    assert lib.reload() == []  # not retried (or re-reported) until the file changes again

    put(root, "main.glsl", valued(3.0))
    assert lib.reload() == []
    new = lib.compute("main.glsl")
    assert new is not old
    assert outputs(ctx, new) == [3.0, 7.0]


def test_reload_follows_included_files(ctx, root, lib):
    put(root, "lib/k.glsl", "const float K = 1.0;\n")
    put(root, "main.glsl", HEAD + '#include "lib/k.glsl"\nvoid main() { v[0] = K; v[1] = 7.0; }\n')
    assert outputs(ctx, lib.compute("main.glsl")) == [1.0, 7.0]
    put(root, "lib/k.glsl", "const float K = ;\n")
    errors = lib.reload()
    assert len(errors) == 1
    assert outputs(ctx, lib.compute("main.glsl")) == [1.0, 7.0]
    put(root, "lib/k.glsl", "const float K = 4.0;\n")
    assert lib.reload() == []
    assert outputs(ctx, lib.compute("main.glsl")) == [4.0, 7.0]


def test_reload_survives_a_deleted_include(ctx, root, lib):
    put(root, "lib/k.glsl", "const float K = 1.0;\n")
    put(root, "main.glsl", HEAD + '#include "lib/k.glsl"\nvoid main() { v[0] = K; v[1] = 7.0; }\n')
    lib.compute("main.glsl")
    (root / "lib/k.glsl").unlink()
    errors = lib.reload()
    assert len(errors) == 1 and "cannot read included file shaders/lib/k.glsl" in str(errors[0])
    assert outputs(ctx, lib.compute("main.glsl")) == [1.0, 7.0]


def test_reload_picks_up_a_restored_include(ctx, root, lib):
    put(root, "lib/k.glsl", "const float K = 1.0;\n")
    put(root, "main.glsl", HEAD + '#include "lib/k.glsl"\nvoid main() { v[0] = K; v[1] = 7.0; }\n')
    lib.compute("main.glsl")
    (root / "lib/k.glsl").unlink()
    assert len(lib.reload()) == 1
    put(root, "lib/k.glsl", "const float K = 5.0;\n")
    assert lib.reload() == []
    assert outputs(ctx, lib.compute("main.glsl")) == [5.0, 7.0]


def test_reload_only_recompiles_what_changed(ctx, root, lib):
    put(root, "a.glsl", valued(1.0))
    put(root, "b.glsl", valued(2.0))
    a, b = lib.compute("a.glsl"), lib.compute("b.glsl")
    put(root, "b.glsl", valued(5.0))
    assert lib.reload() == []
    assert lib.compute("a.glsl") is a and lib.compute("b.glsl") is not b
    assert outputs(ctx, lib.compute("b.glsl")) == [5.0, 7.0]


# -- draw programs ------------------------------------------------------------------------

DRAW = """#version 430
#if defined VERTEX_SHADER
in vec2 in_pos;
void main() { gl_Position = vec4(in_pos, 0.0, 1.0); }
#endif
#if defined FRAGMENT_SHADER
uniform vec4 u_color;
out vec4 f_color;
void main() { f_color = u_color; }
#endif
"""


def test_draw_program_both_stages_from_one_file(ctx, root, lib):
    put(root, "flat.glsl", DRAW)
    prog = lib.program("flat.glsl")
    prog["u_color"].value = (1.0, 0.5, 0.0, 1.0)
    fbo = ctx.simple_framebuffer((4, 4), components=4)
    fbo.use()
    vbo = ctx.buffer(np.array([-1, -1, 3, -1, -1, 3], np.float32).tobytes())
    vao = ctx.vertex_array(prog, [(vbo, "2f", "in_pos")])
    vao.render()
    px = np.frombuffer(fbo.read(components=4), np.uint8).reshape(4, 4, 4)
    assert (px == [255, 128, 0, 255]).all() or (px == [255, 127, 0, 255]).all()
    for o in (vao, vbo, fbo):
        o.release()


def test_draw_program_fragment_error_names_file_and_line(root, lib):
    put(root, "flat.glsl", DRAW.replace("f_color = u_color;", "f_color = u_colour;"))
    err = shader_error(lambda: lib.program("flat.glsl"))
    assert (err.file, err.line) == ("shaders/flat.glsl", 9) and "u_colour" in str(err)


# -- the shipped shaders ------------------------------------------------------------------

@pytest.fixture(scope="module")
def shipped(ctx):
    s = ShaderLibrary(ctx, SHIPPED)
    yield s
    s.release()


@pytest.mark.parametrize("name", ENGINE_COMPUTE)
def test_engine_compute_shaders_compile(shipped, name):
    assert shipped.compute(name) is not None


@pytest.mark.parametrize("name", sorted(p.name for p in SHIPPED.glob("*.glsl")))
def test_every_shipped_shader_compiles(shipped, name):
    text = (SHIPPED / name).read_text()
    prog = shipped.program(name) if "VERTEX_SHADER" in text else shipped.compute(name)
    assert prog is not None
