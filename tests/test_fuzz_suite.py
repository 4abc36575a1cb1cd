"""Property-based tests: no suite document and no malformed file ever produces a traceback.

Suites arrive from CI configs and pull requests, so the loader must turn *any* YAML (random
documents, the shipped smoke suite with fields dropped, replaced by values of the wrong type
or joined by unknown keys) into either a compiled suite or a :class:`UserError` whose message
is one line starting with the file it came from. The CLI is fuzzed more lightly (each example
is a process-level command): random suite files, checkpoints and images must end in exit 0 or
in exit 2 with one ``ddr-eval: error:`` line, never a traceback.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from ddr_eval.cli import main
from ddr_eval.core.errors import UserError
from ddr_eval.config.loader import LoadedSuite, compile_suite, load_suite

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "suites" / "smoke.yaml").read_text())
SOURCE = "fuzzed.yaml"

VALIDATION = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CLI = settings(max_examples=25, deadline=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# -- strategies ----------------------------------------------------------------------------------

keys = st.text(max_size=8)  # any characters, newlines and control characters included
scalars = (st.none() | st.booleans() | st.integers(-(10**6), 10**20) | st.floats() | st.text(max_size=12)
           | st.sampled_from(["bicubic", "gaussian_blur", "chi", "psnr", "embedded", "clean", "deep", "gap"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                      max_leaves=8)


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a nested document (dict keys and list indices)."""
    found = [prefix] if prefix else []
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        found += _paths(child, prefix + (key,))
    return found


SMOKE_PATHS = _paths(SMOKE)


def _node(document: Any, path: tuple) -> Any:
    for part in path:
        document = document[part]
    return document


SMOKE_MAPPINGS = [p for p in [(), *SMOKE_PATHS] if isinstance(_node(SMOKE, p), dict)]

mutations = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(SMOKE_PATHS), st.none()),
    st.tuples(st.just("replace"), st.sampled_from(SMOKE_PATHS), values),
    st.tuples(st.just("add"), st.sampled_from(SMOKE_MAPPINGS), st.tuples(keys, values)),
)


def _mutate(document: dict, changes: list) -> dict:
    document = copy.deepcopy(document)
    for action, path, payload in changes:
        try:
            if action == "add":
                key, value = payload
                _node(document, path)[key] = value
                continue
            parent = _node(document, path[:-1])
            if action == "drop":
                del parent[path[-1]]
            else:
                parent[path[-1]] = payload
        except (KeyError, IndexError, TypeError):
            pass  # an earlier change removed or retyped this path; keep the document as it is
    return document


# -- what every outcome must look like -----------------------------------------------------------


def _compiles_or_fails_cleanly(document: Any, source: str = SOURCE) -> LoadedSuite | None:
    try:
        return compile_suite(document, source)
    except UserError as error:
        _assert_one_line_naming(str(error), source)
        return None


def _assert_one_line_naming(message: str, source: str) -> None:
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{source}: "), message


# -- pure validation ------------------------------------------------------------------------------


def test_the_unmutated_smoke_suite_compiles():
    """The base of the mutation tests is valid, so a failure after a mutation is the mutation's."""
    assert isinstance(compile_suite(copy.deepcopy(SMOKE), SOURCE), LoadedSuite)


@VALIDATION
@given(st.dictionaries(keys, values, max_size=6))
def test_random_documents_compile_or_raise_one_line_user_errors(document):
    _compiles_or_fails_cleanly(document)


@VALIDATION
@given(st.lists(mutations, min_size=1, max_size=4))
def test_mutated_smoke_suites_compile_or_raise_one_line_user_errors(changes):
    _compiles_or_fails_cleanly(_mutate(SMOKE, changes))


@VALIDATION
@given(st.sampled_from(SMOKE_PATHS), values)
def test_a_rejected_field_is_named_by_its_path(path, value):
    """Replacing one field: if that alone makes the suite invalid, the message names where.

    A cross-field check can legitimately name the parent (``degradations[1].chain``), or the
    top-level list a validator saw, so the expectation is a prefix of the changed path.
    """
    try:
        compile_suite(_mutate(SMOKE, [("replace", path, value)]), SOURCE)
    except UserError as error:
        message = str(error)
        _assert_one_line_naming(message, SOURCE)
        top = path[0]
        assert f"{SOURCE}: {top}" in message or "<root>" in message or f"{SOURCE}: degradations" in message, message


@VALIDATION
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                 st.builds(lambda d: yaml.safe_dump(d), st.dictionaries(keys, values, max_size=4))))
def test_random_yaml_files_load_or_raise_one_line_user_errors(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "suite.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            load_suite(path)
        except UserError as error:
            _assert_one_line_naming(str(error), str(path))


def test_known_sharp_edges_from_fuzzing():
    """Cases the fuzzers found: unhashable ``type`` values and keys holding line breaks."""
    unhashable = _mutate(SMOKE, [("replace", ("degradations", 0, "chain", 0, "type"), {"a": 1})])
    with pytest.raises(UserError, match=r"degradations\[0\]\.chain\[0\]\.type: must be a degradation name"):
        compile_suite(unhashable, SOURCE)
    odd_key = _mutate(SMOKE, [("add", ("data",), ("patch\nsize", 3))])
    with pytest.raises(UserError) as info:
        compile_suite(odd_key, SOURCE)
    assert str(info.value) == f"{SOURCE}: data['patch\\nsize']: is not a known field"


# -- the command line ----------------------------------------------------------------------------


def tiny_project(root: Path, images: int = 2) -> dict:
    """A small valid suite (``images`` own images, own tiny model), so runs that validate finish fast."""
    import torch

    from ddr_eval.models.archs import build_arch
    from ddr_eval.models.checkpoint import save_model

    folder = root / "images"
    folder.mkdir()
    for i in range(images):
        pixels = np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8)
        PILImage.fromarray(pixels).save(folder / f"{i}.png")
    torch.manual_seed(0)
    save_model(root / "tiny.safetensors", build_arch("MSRResNet", num_feat=4, num_block=1, upscale=2),
               "MSRResNet", {"num_feat": 4, "num_block": 1, "upscale": 2})
    return {
        "name": "fuzz",
        "data": {"source": str(folder), "patch_size": 16, "patches_per_image": 2},
        "degradations": [{"name": "clean", "chain": [{"type": "bicubic", "scale": 2}]},
                         {"name": "noisy", "chain": [{"type": "bicubic", "scale": 2},
                                                     {"type": "gaussian_noise", "sigma": 10}]}],
        "models": [{"path": str(root / "tiny.safetensors"), "as": "tiny"}],
        "metrics": [{"type": "chi", "label": "degradation", "bootstrap": 0}, {"type": "psnr", "bootstrap": 0}],
        "outputs": {"tsne_plots": False, "html": False},
        "runtime": {"cache": False},
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-project")
    return root, tiny_project(root)


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def _assert_clean_outcome(code: int, stderr: str) -> None:
    assert "Traceback" not in stderr
    if code == 0:
        return
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ddr-eval: error: "), (code, stderr)


@CLI
@given(st.lists(mutations, min_size=1, max_size=3), st.booleans())
def test_cli_run_on_fuzzed_suite_files(project, capsys, changes, as_text_noise):
    root, base = project
    document = _mutate(base | {"degradations": SMOKE["degradations"][:2]}, changes)
    with tempfile.TemporaryDirectory(dir=root) as folder:
        suite = Path(folder) / "suite.yaml"
        text = yaml.safe_dump(document, allow_unicode=True)
        suite.write_text(text[: len(text) // 2] if as_text_noise else text, encoding="utf-8", errors="surrogatepass")
        out = Path(folder) / "report"
        code, stderr = _run_cli(["run", str(suite), "--out", str(out), "-q"], capsys)
        event(f"exit {code}")
        _assert_clean_outcome(code, stderr)
        if code != 0:
            assert not out.exists(), "a run that failed validation wrote a report"


@CLI
@given(st.binary(max_size=300), st.sampled_from([b"", b"\x80\x02", b"PK\x03\x04", b"\x10\x00\x00\x00\x00\x00\x00\x00{"]),
       st.sampled_from([".pth", ".safetensors", ".pt", ".bin"]))
def test_cli_upscale_with_random_checkpoint_bytes(project, capsys, noise, magic, suffix):
    root, _ = project
    with tempfile.TemporaryDirectory(dir=root) as folder:
        checkpoint = Path(folder) / f"random{suffix}"
        checkpoint.write_bytes(magic + noise)
        out = Path(folder) / "out.png"
        code, stderr = _run_cli(["upscale", str(root / "images" / "0.png"), str(out), "--model", str(checkpoint)],
                                capsys)
        _assert_clean_outcome(code, stderr)
        assert code == 2 and not out.exists()


def _encoded(fmt: str) -> bytes:
    import io

    buffer = io.BytesIO()
    PILImage.fromarray(np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(buffer, fmt)
    return buffer.getvalue()


ENCODED = {fmt: _encoded(fmt) for fmt in ("PNG", "JPEG", "BMP", "TIFF")}


@CLI
@given(st.sampled_from(sorted(ENCODED)), st.lists(st.tuples(st.integers(0, 300), st.integers(0, 255)), max_size=8),
       st.integers(1, 400))
def test_cli_upscale_with_damaged_images(project, capsys, fmt, flips, keep):
    root, _ = project
    data = bytearray(ENCODED[fmt])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    with tempfile.TemporaryDirectory(dir=root) as folder:
        image = Path(folder) / f"damaged.{fmt.lower()}"
        image.write_bytes(bytes(data[:keep]))
        out = Path(folder) / "out.png"
        code, stderr = _run_cli(["upscale", str(image), str(out), "--model", str(root / "tiny.safetensors")], capsys)
        _assert_clean_outcome(code, stderr)
        assert out.exists() == (code == 0)
