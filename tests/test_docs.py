"""The documents name files that exist: every repository path ARCHITECTURE.md
and README.md mention in backticks (globs, placeholders and ARCHITECTURE.md's
worked example of a new op aside)."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PATH = re.compile(r"`((?:python|csrc|tests|tools|bench)/[^`\s]*)`")


@pytest.mark.parametrize("doc", ["ARCHITECTURE.md", "README.md"])
def test_every_path_a_document_names_exists(doc):
    text = (ROOT / doc).read_text()
    named = {p for p in PATH.findall(text)
             if not any(c in p for c in "*<") and "avg_pool2d" not in p}
    assert named, f"{doc} names no path"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{doc} names paths that do not exist: {missing}"


def test_the_package_version_is_pyprojects():
    import convbench

    text = (ROOT / "pyproject.toml").read_text()
    project = text[text.index("[project]"):]
    assert convbench.__version__ == re.search(r'^version = "([^"]+)"', project, re.M).group(1)
