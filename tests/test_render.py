"""`function-litellm-keys render` and the names it composes, on hostile files (issue 9).

- item 12: a 324-byte YAML alias bomb, non-UTF-8 bytes and oversized files
  get a clear one-line error and exit 2, in well under a second, instead of
  gigabytes and minutes or a traceback;
- item 13: two VirtualKeys whose names share their first 200 characters no
  longer share a Secret.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from function.composed import owner_of
from function.main import main
from tests.conftest import ROOT, load_example

LEVELS = "abcdefghi"
BOMB = "".join(
    f"{name}: &{name} [{','.join([f'*{LEVELS[i - 1]}'] * 9) if i else ','.join(['x'] * 9)}]\n"
    for i, name in enumerate(LEVELS)
)


def _render(tmp_path: Path, content: bytes, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "virtualkey.yaml"
    path.write_bytes(content)
    code = main(["render", str(path)])
    return code, capsys.readouterr().err


def test_a_yaml_alias_bomb_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(BOMB) < 400  # 9**9 = 387 million nodes once expanded
    code, err = _render(tmp_path, BOMB.encode(), capsys)
    assert code == 2
    assert "expands to more than 200000 YAML nodes" in err


def test_one_long_string_aliased_many_times_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 3 MB once in the file, 450 GB once every alias is a copy of it (protobuf copies).
    content = "a: &a " + "x" * (3 * 1024 * 1024) + "\nb: [" + ",".join(["*a"] * 150_000) + "]\n"
    code, err = _render(tmp_path, content.encode(), capsys)
    assert code == 2
    assert "characters (aliases included)" in err


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"kind: VirtualKey\nmetadata: {name: \xff\xfe}\n", "is not UTF-8 text (at byte 34)"),
        (b"a: " + b"x" * (5 * 1024 * 1024), "is larger than"),
        (b"[[[[[[[[", "is not valid YAML"),
    ],
    ids=["latin-1 bytes", "5 MB", "broken YAML"],
)
def test_a_bad_file_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, fragment: str
) -> None:
    code, err = _render(tmp_path, content, capsys)
    assert code == 2
    assert fragment in err
    assert "Traceback" not in err


def test_stdin_with_bad_bytes_is_one_clear_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "function.main", "render", "-"],
        input=b"\xff\xfe\x00",
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert b"is not UTF-8 text" in done.stderr
    assert b"Traceback" not in done.stderr


def test_long_names_sharing_200_characters_do_not_share_a_secret() -> None:
    first = copy.deepcopy(load_example("virtualkey/virtualkey.yaml"))
    second = copy.deepcopy(first)
    stem = "a" * 62 + "." + "b" * 62 + "." + "c" * 62 + "." + "d" * 20  # 209 characters
    first["metadata"]["name"] = stem + "-one"
    second["metadata"]["name"] = stem + "-two"
    one, two = owner_of(first).base_name, owner_of(second).base_name
    assert one != two
    assert len(one) <= 200
    assert len(two) <= 200
    # Names that fit keep their composed names, so nothing already composed moves.
    short = copy.deepcopy(first)
    short["metadata"]["name"] = "example-service"
    assert owner_of(short).base_name == "example-service"
