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
# ledger reads; _blocktable.h: the ledger's block table): a change rebuilds them all,
# and the sdist carries them.
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
