"""The commands of a how-to, read from the markdown the user reads, so a test runs exactly them."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(markdown: Path, heading: str) -> str:
    """The text under `## heading`, up to the next heading of the same or a higher level."""
    text = markdown.read_text()
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
    if match is None:
        raise AssertionError(f"{markdown.name} has no section {heading!r}")
    level = len(match.group(1))
    rest = text[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return rest if end is None else rest[: end.start()]


def commands(markdown: Path, heading: str) -> list[list[str]]:
    """Every command of the section's bash blocks, in order, as argv lists: comments dropped,
    backslash continuations joined."""
    found: list[list[str]] = []
    for language, body in _FENCE.findall(section(markdown, heading)):
        if language != "bash":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                found.append(argv)
    if not found:
        raise AssertionError(f"{markdown.name}, {heading!r}: no bash commands")
    return found
