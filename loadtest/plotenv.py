"""Shared by the loadtest scripts that draw a plot under --record (perf, soak)."""
import os
import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent.parent / ".venv-plot"


def with_matplotlib(script):
    """Makes sure matplotlib can be imported before a long run starts, not after it.
    Without it in this python, re-runs `script` with the same arguments under
    .venv-plot, which is made and filled on first use."""
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    py = VENV / "bin/python"
    if Path(sys.prefix).resolve() == VENV.resolve():
        sys.exit("matplotlib still missing in .venv-plot")
    if not py.exists():
        print("creating .venv-plot for matplotlib", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(py), "-c", "import matplotlib"], capture_output=True).returncode:
        print("pip install matplotlib into .venv-plot", flush=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "matplotlib"], check=True)
    os.execv(str(py), [str(py), str(Path(script).resolve())] + sys.argv[1:])
