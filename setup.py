"""Build memactor's optional C extensions; everything else is in pyproject.toml.

Each ``memactor/_native/NAME.c`` is the extension module ``memactor._native.NAME``. They
are optional: where one fails to build (no C compiler, no Python headers) the install
goes on, and memactor runs that part in pure Python and says so once (see
:mod:`memactor._native`).
"""

from pathlib import Path

from setuptools import Extension, setup

_FLAGS = ["-O2", "-std=c11", "-Wall", "-Wno-missing-field-initializers"]
# The headers the modules share (_records.h: the event records the emits write and the
# ledger reads): a change rebuilds them, and the sdist carries them.
_HEADERS = [header.as_posix() for header in sorted(Path("memactor/_native").glob("*.h"))]

# The headers every extension may include (the record layout, the block table): a
# change to one rebuilds them all.
_HEADERS = [header.as_posix() for header in sorted(Path("memactor/_native").glob("*.h"))]

setup(
    ext_modules=[
        Extension(
            f"memactor._native.{source.stem}",
            [source.as_posix()],
            depends=_HEADERS,
            extra_compile_args=_FLAGS,
            optional=True,
        )
        for source in sorted(Path("memactor/_native").glob("*.c"))
    ]
)
