"""Generates the hooknorm.v1 stubs from the .proto files whenever the package is built.

The protos are the repository's proto/ (a build from the source tree), or the copy an sdist
carries in proto/ (a build from the sdist). protoc comes from grpcio-tools, a build requirement,
so no system protoc is needed. Generation runs when this file is loaded, before setuptools looks
for the packages, so every build path (wheel, sdist, editable) sees hooknorm.v1.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
OUT = HERE / "src"


def proto_root() -> Path:
    for candidate in (HERE / "proto", HERE.parent.parent / "proto"):
        if (candidate / "hooknorm" / "v1").is_dir():
            return candidate
    raise SystemExit("hooknorm: no proto/hooknorm/v1 next to clients/python or in the sdist")


def generate_stubs() -> None:
    """Runs grpc_tools.protoc over proto/hooknorm/v1/*.proto into src/hooknorm/v1/."""
    import grpc_tools
    from grpc_tools import protoc

    root = proto_root()
    protos = sorted(str(p.relative_to(root)) for p in (root / "hooknorm" / "v1").glob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={OUT}",
        f"--pyi_out={OUT}",
        f"--grpc_python_out={OUT}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"hooknorm: protoc failed on {protos}")
    (OUT / "hooknorm" / "v1" / "__init__.py").write_text(
        '"""Generated from proto/hooknorm/v1 at build time; do not edit."""\n'
    )


class Sdist(sdist):
    """Carries a copy of the protos, so a wheel can be built from the sdist alone."""

    def run(self) -> None:
        root = proto_root()
        if root != HERE / "proto":
            shutil.copytree(root / "hooknorm", HERE / "proto" / "hooknorm", dirs_exist_ok=True)
        super().run()


generate_stubs()
setup(cmdclass={"sdist": Sdist})
