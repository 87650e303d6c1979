"""Start-up: what ``import zoo`` adds to ``import torch``.

Each import runs in a fresh interpreter (``python -c``), the two commands alternating, warm
page cache; the figure is the median wall time of each, and their difference is what zoo adds.
``python -X importtime`` gives zoo's own cumulative import time as a cross-check. Goal: at most
0.1 s over ``import torch``. (The warm ``zoo.load(name, pretrained=True)`` is measured by
``bench_pretrained`` against building on the meta device plus reading the safetensors file.)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._util import machine_info, markdown_table

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {
    "import torch": "import torch",
    "import torch, zoo": "import torch; import zoo",
    "import torch, zoo + zoo.load (first use)": "import torch; import zoo; zoo.load",
}


def _wall(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    return time.perf_counter() - start


def _zoo_importtime() -> float:
    """zoo's cumulative import time (s) after torch, from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import torch; import zoo"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    for line in reversed(proc.stderr.splitlines()):
        fields = [f.strip() for f in line.split("|")]
        if len(fields) == 3 and fields[2] == "zoo":
            return int(fields[1]) / 1e6
    raise RuntimeError("zoo not in the -X importtime output")


def run(quick: bool = False) -> str:
    rounds = 3 if quick else 9
    times: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for code in COMMANDS.values():
        _wall(code)  # warm the page cache
    for _ in range(rounds):
        for label, code in COMMANDS.items():
            times[label].append(_wall(code))
    base = statistics.median(times["import torch"])
    rows = [
        [label, f"{statistics.median(t):.3f}", f"{statistics.median(t) - base:+.3f}"]
        for label, t in times.items()
    ]
    importtime = statistics.median(_zoo_importtime() for _ in range(3))
    table = markdown_table(["command", "seconds (median)", "over import torch"], rows)
    info = machine_info()
    return (
        "### Start-up: import time\n\n"
        f"Median of {rounds} alternating fresh interpreters each; goal: `import zoo` adds at "
        f"most 0.1 s to `import torch`. `-X importtime` cumulative for zoo: {importtime:.4f} s "
        "(median of 3). zoo imports its networks, HTTP stack and checkpoint reader on first use "
        "of a name that needs them (the third row). "
        f"Machine: {info['cpu']}, {info['cores']} cores, Python {info['python']}.\n\n"
        f"{table}\n"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three rounds")
    print(run(quick=parser.parse_args().quick))
