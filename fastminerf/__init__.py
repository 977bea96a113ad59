"""fastminerf: one hash-grid radiance field for many people.

Stages (each in its own subpackage): ``data`` (cast on disk → rays), ``ops`` (hot ops with
torch twins and CUDA paths), ``model`` (conditioning, codes, field, avatar), ``train``,
``render``, ``eval``. Importing fastminerf never compiles CUDA code.
"""
from .threads import passive_waiting

passive_waiting()  # before torch loads OpenMP: idle workers sleep instead of spinning

__version__ = "0.1.0"
