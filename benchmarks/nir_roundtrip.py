"""NIR export and import of the shipped chains: wall time and whether the artifact comes back identical.

    python benchmarks/nir_roundtrip.py [--models default,tiny] [--images 4]

For each model: ``snnfpga export`` (the NIR graph and the golden traces of the first
``--images`` validation images) and ``snnfpga import`` as library calls, timed together
(best of 3, seconds), the sizes of the two files (bytes), and whether the imported artifact's
``manifest.json`` and ``arrays.npz`` are byte-identical to the shipped ones (target: yes).
The issue's targets for a network trained in snnTorch: ``benchmarks/nir_snntorch.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from snnfpga.model.artifact import load_artifact, save_artifact, shipped_model_dir
    from snnfpga.model.data import load_dataset
    from snnfpga.model.nir_export import export_nir
    from snnfpga.model.nir_import import import_nir

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="default,tiny")
    p.add_argument("--images", type=int, default=4)
    args = p.parse_args(argv)
    images = load_dataset("default").split("val").limit(args.images).images
    print(f"{'model':10} {'export+import s':>16} {'NIR bytes':>10} {'golden bytes':>13}  identical")
    ok = True
    for name in args.models.split(","):
        art = load_artifact(name)
        best = float("inf")
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(3):
                start = time.perf_counter()
                result = export_nir(art, Path(tmp) / f"{name}.nir", images)
                back = save_artifact(import_nir(result["nir"]), Path(tmp) / "back")
                best = min(best, time.perf_counter() - start)
            same = all((back / f).read_bytes() == (shipped_model_dir(name) / f).read_bytes()
                       for f in ("manifest.json", "arrays.npz"))
            sizes = [Path(result[k]).stat().st_size for k in ("nir", "golden")]
        ok &= same
        print(f"{name:10} {best:16.2f} {sizes[0]:10,} {sizes[1]:13,}  {'yes' if same else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
