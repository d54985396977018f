"""The README stays true: its commands exist and its example command lines parse."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from vaelab.cli import build_parser, main
from vaelab.presets import preset_names

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def example_lines() -> list[list[str]]:
    """Every ``vaelab ...`` line of the README's bash examples (continuations joined)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    lines = []
    for line in text.splitlines():
        line = line.split("#")[0].strip()
        if "vaelab" in line and not line.startswith("make"):
            words = shlex.split(line)
            start = words.index("train") if "-m" in words else words.index("vaelab") + 1
            lines.append(words[start:])
    return lines


def test_the_readme_has_examples():
    assert len(example_lines()) >= 5


@pytest.mark.parametrize("argv", example_lines(), ids=lambda a: " ".join(a)[:60])
def test_readme_examples_parse(argv):
    args = build_parser().parse_args(argv)
    assert hasattr(args, "func")
    if getattr(args, "preset", None):
        assert args.preset in preset_names()


def test_every_command_in_the_usage_block_exists(capsys):
    usage = re.search(r"## The command line\n\n```\n(.*?)```", README, flags=re.S).group(1)
    commands = sorted(
        {tuple(m.split()[1:3]) for m in re.findall(r"^vaelab \w+(?: \w+)?", usage, flags=re.M)}
    )
    assert ("train",) in {c[:1] for c in commands}
    for command in commands:
        argv = [w for w in command if not w.isupper()]
        with pytest.raises(SystemExit) as done:
            main([*argv, "--help"])
        assert done.value.code == 0, command


def test_every_preset_is_in_the_readme():
    for name in preset_names():
        stem = name.split("_")[0]
        assert name in README or f"`{stem}_" in README, name


def test_readme_python_examples_run():
    for block in re.findall(r"```python\n(.*?)```", README, flags=re.S):
        exec(compile(block, "README.md", "exec"), {})  # the README's own code, nothing else
