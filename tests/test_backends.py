"""convbench.backends: choosing the CPU ISA build (ISA) at run time."""
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import convbench
from convbench import backends


def test_default_is_the_best_variant_this_cpu_runs():
    assert backends.cpu_isas()[0] == "generic"
    assert backends.cpu_isa == backends.cpu_isas()[-1] or os.environ.get("CONVBENCH_CPU_ISA")


@pytest.mark.parametrize("isa", backends.cpu_isas())
def test_setter_switches_and_flags_restore(isa):
    before = backends.cpu_isa
    with backends.flags(cpu_isa=isa):
        assert backends.cpu_isa == isa
        assert convbench.build_info()["cpu_isa"] == isa
        x, w = torch.randn(2, 3, 9, 9, dtype=torch.float64), torch.randn(4, 3, 3, 3,
                                                                         dtype=torch.float64)
        torch.testing.assert_close(convbench.conv2d(x, w), F.conv2d(x, w))
    assert backends.cpu_isa == before


def test_attribute_setter():
    before = backends.cpu_isa
    try:
        backends.cpu_isa = "generic"
        assert backends.cpu_isa == "generic"
    finally:
        backends.cpu_isa = before


def test_flags_restore_after_an_exception():
    before = backends.cpu_isa
    with pytest.raises(RuntimeError, match="inside"):
        with backends.flags(cpu_isa="generic"):
            raise RuntimeError("inside")
    assert backends.cpu_isa == before


@pytest.mark.parametrize("name, match", [("sse4", "unknown CPU ISA 'sse4'"),
                                         ("AVX2", "unknown CPU ISA 'AVX2'")])
def test_unknown_names_are_refused(name, match):
    with pytest.raises(ValueError, match=match):
        backends.cpu_isa = name


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError, match="cpu_isa must be a string"):
        backends.set_cpu_isa(2)


def test_a_variant_the_cpu_lacks_is_refused():
    missing = [i for i in ("avx2", "avx512") if i not in backends.cpu_isas()]
    if not missing:
        pytest.skip("this CPU runs every compiled ISA build")
    with pytest.raises(ValueError, match="cannot run|not compiled"):
        backends.set_cpu_isa(missing[0])


def _import_with(env_value):
    env = dict(os.environ, CONVBENCH_CPU_ISA=env_value)
    code = "import convbench; print(convbench.backends.cpu_isa)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_environment_variable_sets_the_variant():
    r = _import_with("generic")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "generic"


def test_environment_variable_with_a_bad_name_fails_the_import_clearly():
    r = _import_with("neon")
    assert r.returncode != 0
    assert "CONVBENCH_CPU_ISA=neon" in r.stderr and "unknown CPU ISA" in r.stderr
