"""The README's Python examples run as written."""

import re
from pathlib import Path

import jax
import matplotlib.pyplot as plt
import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_an_example_for_each_job():
    text = "\n".join(BLOCKS)
    assert "nnx.Optimizer" in text  # compose an optimizer in Flax
    assert "jol.sweep(" in text  # run a sweep
    assert "jol.curvature.analyze(" in text  # analyze a Hessian


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    namespace: dict = {"__name__": f"readme_example_{index}"}
    code = compile(BLOCKS[index], f"README.md example {index}", "exec")
    with jax.numpy_rank_promotion("allow"):  # users broadcast biases; the suite is strict
        exec(code, namespace)
    plt.close("all")
    if "jol.curvature.analyze(rosen.fn" in BLOCKS[index]:
        out = capsys.readouterr().out
        assert "minimum" in out and "1001.6" in out and "2507.96" in out
