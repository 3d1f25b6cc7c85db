"""``python -m visdepth``: the command line, also as launchers start it (``accelerate launch -m visdepth``,
``torchrun -m visdepth``)."""

from visdepth.cli import app

if __name__ == "__main__":
    app(prog_name="visdepth")
