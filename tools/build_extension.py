"""Build the PhysFace extension zips, one per platform, with Blender's own builder.

Downloads the bundled wheels into ``wheels/``, writes their list into
``blender_manifest.toml``, builds ``dist/physface-<version>-<platform>.zip`` with
``blender_ext.py build --split-platforms`` and validates each zip with ``blender_ext.py validate``.

    .venv/bin/python tools/build_extension.py [--platform linux-x64 ...] [--skip-download]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WHEELS = ROOT / "wheels"
DIST = ROOT / "dist"
MANIFEST = ROOT / "blender_manifest.toml"
REQUIREMENTS = ROOT / "requirements.txt"

# Packages bundled as wheels; their versions come from requirements.txt.
BUNDLE = ("scipy", "warp-lang", "onnxruntime")
# Imported from Blender's own Python, never bundled.
BLENDER_SHIPS = frozenset({"numpy"})
# Requirements a bundled wheel declares but PhysFace never imports through it, so they are not
# bundled (Blender installs wheels without resolving requirements). Measured: loading and running
# models/default with ONNX Runtime imports none of them.
NOT_NEEDED = {"onnxruntime": frozenset({"flatbuffers", "packaging", "protobuf"})}
PYTHON = "3.11"
# Blender platform -> pip --platform tags (Blender 4.2+ needs glibc 2.28 and macOS 11.2+).
# onnxruntime 1.31.1 has only a macOS 14 arm64 wheel; the macOS 12 tag comes first so pip
# picks that wheel for the packages that have one.
PLATFORMS = {
    "linux-x64": ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"),
    "windows-x64": ("win_amd64",),
    "macos-arm64": ("macosx_12_0_arm64", "macosx_14_0_arm64"),
}


class BuildError(RuntimeError):
    """A step failed; the message says which and why."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def read_pins(names=BUNDLE, requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """Return ``{name: version}`` for ``names`` from the ``name==version`` lines of requirements."""
    pins = {}
    for line in requirements.read_text().splitlines():
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
        if m:
            pins[normalize(m[1])] = m[2]
    missing = [n for n in names if normalize(n) not in pins]
    if missing:
        raise BuildError(f"{requirements.name} has no '==' pin for {', '.join(missing)}")
    return {n: pins[normalize(n)] for n in names}


def wheel_platforms(wheel: Path) -> set[str]:
    """Blender platforms a wheel file serves, from its platform tags (as blender_ext.py does)."""
    found = set()
    for tag in wheel.stem.split("-")[-1].split("."):
        if tag == "any":
            found |= set(PLATFORMS)
        elif tag.startswith(("manylinux", "musllinux", "linux")) and tag.endswith("x86_64"):
            found.add("linux-x64")
        elif tag == "win_amd64":
            found.add("windows-x64")
        elif tag.startswith("macosx") and tag.endswith(("arm64", "universal2")):
            found.add("macos-arm64")
    return found


def wheels_for(name: str, version: str, platform: str, folder: Path = WHEELS) -> list[Path]:
    return [
        w
        for w in sorted(folder.glob("*.whl"))
        if w.name.lower().startswith(f"{normalize(name)}-{version}-")
        and platform in wheel_platforms(w)
    ]


def download(platforms, pins: dict[str, str], folder: Path = WHEELS) -> None:
    """Download the pinned wheels missing from ``folder``, one pip call per platform."""
    folder.mkdir(exist_ok=True)
    for platform in platforms:
        missing = [f"{n}=={v}" for n, v in pins.items() if not wheels_for(n, v, platform, folder)]
        if not missing:
            print(f"{platform}: wheels already in {folder.name}/")
            continue
        print(f"{platform}: downloading {' '.join(missing)}")
        cmd = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps"]
        cmd += [f"--platform={tag}" for tag in PLATFORMS[platform]]
        cmd += ["--python-version", PYTHON, "--implementation", "cp"]
        cmd += ["--abi", f"cp{PYTHON.replace('.', '')}", "--abi", "none", "-d", str(folder)]
        if subprocess.run(cmd + missing).returncode != 0:
            raise BuildError(f"pip download failed for {platform}: {' '.join(missing)}")
        still = [r for r in missing if not wheels_for(*r.split("=="), platform, folder)]
        if still:
            raise BuildError(f"pip gave no {platform} wheel for {', '.join(still)}")


def requirements_of(wheel: Path) -> set[str]:
    """Names a wheel requires outside of extras."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    names = set()
    for line in text.splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            names.add(normalize(re.match(r"[A-Za-z0-9_.-]+", line.split(":", 1)[1].strip())[0]))
    return names


def collect_wheels(pins: dict[str, str], folder: Path = WHEELS) -> list[Path]:
    """Pinned wheels in ``folder`` for any platform; other wheels there are removed as stale."""
    keep = sorted(
        {w for n, v in pins.items() for p in PLATFORMS for w in wheels_for(n, v, p, folder)}
    )
    for stale in sorted(set(folder.glob("*.whl")) - set(keep)):
        print(f"removing stale {folder.name}/{stale.name}")
        stale.unlink()
    allowed = {normalize(n) for n in pins} | BLENDER_SHIPS
    not_needed = {normalize(n): {normalize(r) for r in rs} for n, rs in NOT_NEEDED.items()}
    for wheel in keep:
        skip = not_needed.get(normalize(wheel.name.split("-")[0]), set())
        if extra := requirements_of(wheel) - allowed - skip:
            raise BuildError(f"{wheel.name} requires {', '.join(sorted(extra))}: add to BUNDLE")
    return keep


def write_manifest_wheels(wheels: list[Path], manifest: Path = MANIFEST) -> bool:
    """Rewrite only the top-level ``wheels = [...]`` list; return whether the file changed."""
    text = manifest.read_text()
    items = "".join(f'  "./{w.relative_to(manifest.parent).as_posix()}",\n' for w in wheels)
    new_list = f"wheels = [\n{items}]" if wheels else "wheels = []"
    new, count = re.subn(r"^wheels = \[[^\]]*\]", new_list, text, count=1, flags=re.M)
    if count != 1:
        raise BuildError(f"{manifest.name} has no top-level 'wheels = [...]' list")
    if new != text:
        manifest.write_text(new)
    return new != text


def blender_ext() -> Path:
    """Path of ``blender_ext.py`` inside the installed bpy package (bpy is not imported)."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("bpy is not installed in this Python: run tools/dev.sh setup")
    bpy_dir = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(bpy_dir.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"no blender_ext.py under {bpy_dir}")
    return found[-1]


def run_ext(*args: str) -> None:
    """Run ``blender_ext.py`` with this Python; its messages go into the error on failure."""
    cmd = [sys.executable, str(blender_ext()), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise BuildError(f"blender_ext.py {' '.join(args)} failed:\n{output or '(no output)'}")
    if output:
        print(output)


def build(platforms, out_dir: Path = DIST) -> list[Path]:
    """Build every platform's zip, keep those of ``platforms`` in ``out_dir``, validate them."""
    out_dir.mkdir(exist_ok=True)
    zips = []
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        run_ext("build", "--source-dir", str(ROOT), "--output-dir", tmp, "--split-platforms")
        for platform in platforms:
            built = list(Path(tmp).glob(f"*-{platform.replace('-', '_')}.zip"))
            if len(built) != 1:
                raise BuildError(f"blender_ext.py built no zip for {platform}")
            zips.append(Path(shutil.move(built[0], out_dir / built[0].name)))
    for zip_path in zips:
        run_ext("validate", str(zip_path))
    return zips


def prepare(platforms, skip_download: bool = False) -> list[Path]:
    """Make ``wheels/`` hold the pinned wheels of ``platforms`` and list them in the manifest."""
    pins = read_pins()
    if not skip_download:
        download(platforms, pins)
    for platform in platforms:
        if missing := [n for n, v in pins.items() if not wheels_for(n, v, platform)]:
            raise BuildError(f"no {platform} wheel in wheels/ for {', '.join(missing)}")
    wheels = collect_wheels(pins)
    if write_manifest_wheels(wheels):
        print(f"updated the wheels list in {MANIFEST.name}")
    return wheels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--platform",
        action="append",
        choices=list(PLATFORMS),
        help="platform to build (repeatable; default: all)",
    )
    parser.add_argument(
        "--skip-download", action="store_true", help="use the wheels already in wheels/"
    )
    args = parser.parse_args(argv)
    platforms = list(dict.fromkeys(args.platform or PLATFORMS))
    try:
        prepare(platforms, args.skip_download)
        zips = build(platforms)
    except BuildError as err:
        print(f"build_extension: error: {err}", file=sys.stderr)
        return 1
    print(f"\n{'zip':<44} {'MB':>8}")
    for zip_path in zips:
        print(f"{zip_path.relative_to(ROOT).as_posix():<44} {zip_path.stat().st_size / 1e6:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
