"""How fast the license engine is, next to the RSA operation it cannot avoid.

    python benchmarks/bench_license.py [--seconds 3] [--bits 2048]

Prints keys encoded and decoded per second and the raw RSA private-key operations per second of the
same key, measured in the same run, and the encode/raw cost ratio (target: at most 1.3). Where SoftHSM2 is
installed, it also imports that key into a temporary SoftHSM token and prints, in the same run, keys
signed per second through PKCS#11 against the file backend, for the same key and licenses.
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


def softhsm_rate(key, lic, seconds: float) -> tuple[float, float, str] | None:
    """Signing through a SoftHSM2 token holding this key, and through the file backend, in turn."""
    import glob
    import shutil
    import subprocess
    import tempfile

    from cryptography.hazmat.primitives import serialization

    from bot.license import derive_key_material, sign
    from bot.signer import FileSigner, Pkcs11Signer

    module = next(iter(glob.glob("/usr/lib/softhsm/libsofthsm2.so") + glob.glob("/usr/lib/*/softhsm/libsofthsm2.so")),
                  None)
    if not module or not shutil.which("softhsm2-util"):
        return None
    home = tempfile.mkdtemp(prefix="bench-softhsm-")
    os.makedirs(f"{home}/tokens")
    with open(f"{home}/softhsm2.conf", "w") as conf:
        conf.write(f"directories.tokendir = {home}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = f"{home}/softhsm2.conf"
    with open(f"{home}/key.p8", "wb") as out:
        out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    run = {"check": True, "capture_output": True}
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "bench", "--pin", "1234", "--so-pin",
                    "5678"], **run)
    subprocess.run(["softhsm2-util", "--import", f"{home}/key.p8", "--token", "bench", "--label", "k", "--id", "01",
                    "--pin", "1234"], **run)
    os.unlink(f"{home}/key.p8")
    version = subprocess.run(["softhsm2-util", "--version"], capture_output=True, text=True).stdout.strip()
    signers = (FileSigner(key), Pkcs11Signer(module, "bench", "k", "1234"))

    def made(signer):
        aes_key, iv = derive_key_material(signer, "bench", lic)
        return lambda: sign(lic, signer, date(2026, 11, 27), aes_key=aes_key, iv=iv)
    assert made(signers[0])() == made(signers[1])()  # the same key, byte for byte
    rates = [rate(made(s), seconds) for s in signers]
    shutil.rmtree(home, ignore_errors=True)
    return rates[0], rates[1], version


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
    hsm = softhsm_rate(key, lic, args.seconds)
    print(f"RSA-{args.bits}, {args.seconds:g}s per measurement, Python {sys.version.split()[0]}")
    print(f"raw RSA private-key ops/s : {raw:10.1f}")
    print(f"keys encoded/s            : {enc:10.1f}")
    print(f"keys decoded/s            : {dec:10.1f}")
    print(f"encode cost / raw RSA cost: {ratio:10.3f}  (target <= 1.3: {'met' if ratio <= 1.3 else 'MISSED'})")
    if hsm:
        print(f"keys signed/s, file signer : {hsm[0]:10.1f}")
        print(f"keys signed/s, SoftHSM     : {hsm[1]:10.1f}  (PKCS#11 over SoftHSM2 {hsm[2]}; file / SoftHSM "
              f"{hsm[0] / hsm[1]:.2f}x)")
    else:
        print("SoftHSM2 not installed: PKCS#11 signing not measured (apt-get install softhsm2)")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
