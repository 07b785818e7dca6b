"""How fast the license engine is, next to the RSA operation it cannot avoid.

    python benchmarks/bench_license.py [--seconds 3] [--bits 2048]

Prints keys encoded and decoded per second and the raw RSA private-key operations per second of the
same key, measured in the same run, and the encode/raw cost ratio (target: at most 1.3).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo  # noqa: E402

from bot import keys  # noqa: E402
from bot.license import TrialTerms, build_trial, decode, encode  # noqa: E402


def rate(func, seconds: float) -> float:
    """Calls per second, over batches until `seconds` have passed."""
    func()  # warm up
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(20):
            func()
        count += 20
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--bits", type=int, default=2048)
    args = parser.parse_args()

    key = keys.generate(args.bits)
    public = key.public_key()
    lic = build_trial("bench@example.com", 1250, date(2026, 11, 27), TrialTerms())
    sample = encode(lic, key)
    aes_key = os.urandom(16)

    raw = rate(lambda: key.sign(aes_key, padding.PKCS1v15(), NoDigestInfo()), args.seconds)
    enc = rate(lambda: encode(lic, key), args.seconds)
    dec = rate(lambda: decode(sample, public), args.seconds)
    ratio = raw / enc
    print(f"RSA-{args.bits}, {args.seconds:g}s per measurement, Python {sys.version.split()[0]}")
    print(f"raw RSA private-key ops/s : {raw:10.1f}")
    print(f"keys encoded/s            : {enc:10.1f}")
    print(f"keys decoded/s            : {dec:10.1f}")
    print(f"encode cost / raw RSA cost: {ratio:10.3f}  (target <= 1.3: {'met' if ratio <= 1.3 else 'MISSED'})")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
