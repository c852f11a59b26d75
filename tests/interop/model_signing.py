#!/usr/bin/env python3
"""Interop test: mlsec and the real OpenSSF `model-signing` (PyPI) sign for each other.

Both directions, key and certificate modes, every serialization model-signing has:

  * mlsec signs (CLI `mlsec sign` and the conformance adapter `mlsec sign-model`), and
    model-signing verifies, with its CLI (`model_signing verify key|certificate`) and its API
    (`model_signing.verifying.Config`, which reads the serialization from the bundle);
  * model-signing signs (CLI and API), and mlsec verifies (`mlsec verify`, `mlsec verify-model`);
  * tampering is caught on both sides.

Keys and certificates are made here, for the run, in a temporary directory.

Usage: python3 tests/interop/model_signing.py [--mlsec target/debug/mlsec] [--venv DIR]
The venv (default /tmp/mlsec-interop-venv) gets `model-signing` and `pyopenssl` from PyPI once.
Exit status 0 when every check passed; the failures are listed otherwise.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAILURES: list[str] = []
PASSED = 0


def ensure_venv(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists() or subprocess.run([str(py), "-c", "import model_signing, OpenSSL"], capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "model-signing==1.1.1", "pyopenssl"], check=True)
    return py


def check(label: str, cmd: list, expect_ok: bool = True, **kw) -> None:
    global PASSED
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    ok = (r.returncode == 0) == expect_ok
    if ok:
        PASSED += 1
        print(f"ok    {label}")
    else:
        FAILURES.append(label)
        print(f"FAIL  {label} (exit {r.returncode})\n{r.stdout}{r.stderr}")


def make_pki(py: Path, d: Path) -> None:
    """EC keys (P-256/384/521) and a root -> intermediate -> leaf chain, with `cryptography`."""
    code = r'''
import datetime, sys
from pathlib import Path
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
d = Path(sys.argv[1])
enc = lambda k: k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
pub = lambda k: k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
for n, c in [("p256", ec.SECP256R1()), ("p384", ec.SECP384R1()), ("p521", ec.SECP521R1())]:
    k = ec.generate_private_key(c)
    (d / f"{n}.key").write_bytes(enc(k)); (d / f"{n}.pub").write_bytes(pub(k))
now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
def signed(cn, issuer, key, signer, ca, algorithm, **kw):
    b = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
         .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
    else:
        b = b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
    return b.sign(signer, algorithm, **kw)
def cert(cn, issuer, key, signer, ca):
    return signed(cn, issuer, key, signer, ca, hashes.SHA256())
rk = ec.generate_private_key(ec.SECP384R1()); root = cert("interop root", x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "interop root")]), rk, rk, True)
ik = ec.generate_private_key(ec.SECP384R1()); inter = cert("interop intermediate", root.subject, ik, rk, True)
lk = ec.generate_private_key(ec.SECP256R1()); leaf = cert("interop leaf", inter.subject, lk, ik, False)
pem = lambda c: c.public_bytes(serialization.Encoding.PEM)
(d / "root.pem").write_bytes(pem(root)); (d / "intermediate.pem").write_bytes(pem(inter)); (d / "leaf.pem").write_bytes(pem(leaf))
(d / "leaf.key").write_bytes(enc(lk))
# Chains whose CAs sign with RSA (PSS at the root, PKCS#1 v1.5 SHA-384 below) and with Ed25519;
# the leaf keys stay ECDSA, the only kind model-signing signs with.
from cryptography.hazmat.primitives.asymmetric import rsa, ed25519, padding
pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
rrk = rsa.generate_private_key(public_exponent=65537, key_size=3072)
rroot = signed("rsa root", x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa root")]), rrk, rrk, True, hashes.SHA256(), rsa_padding=pss)
rik = rsa.generate_private_key(public_exponent=65537, key_size=2048)
rinter = signed("rsa intermediate", rroot.subject, rik, rrk, True, hashes.SHA256(), rsa_padding=pss)
rlk = ec.generate_private_key(ec.SECP384R1())
rleaf = signed("rsa-issued leaf", rinter.subject, rlk, rik, False, hashes.SHA384())
erk = ed25519.Ed25519PrivateKey.generate()
eroot = signed("ed25519 root", x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed25519 root")]), erk, erk, True, None)
elk = ec.generate_private_key(ec.SECP256R1())
eleaf = signed("ed25519-issued leaf", eroot.subject, elk, erk, False, None)
for n, c in [("rsa-root", rroot), ("rsa-intermediate", rinter), ("rsa-leaf", rleaf), ("ed-root", eroot), ("ed-leaf", eleaf)]:
    (d / f"{n}.pem").write_bytes(pem(c))
(d / "rsa-leaf.key").write_bytes(enc(rlk)); (d / "ed-leaf.key").write_bytes(enc(elk))
'''
    subprocess.run([str(py), "-c", code, str(d)], check=True)


API_VERIFY = r'''
import sys, model_signing
model, sig, mode, material = sys.argv[1:5]
cfg = model_signing.verifying.Config()
if sys.argv[5:] == ["blake2"]:
    # model-signing cannot read its own "blake2b" hash_type back when it guesses the
    # configuration from a bundle (it only knows "blake2"), so name it, as for its own bundles.
    cfg.set_hashing_config(model_signing.hashing.Config().use_file_serialization(hashing_algorithm="blake2"))
if mode == "key":
    cfg = cfg.use_elliptic_key_verifier(public_key=material)
else:
    cfg = cfg.use_certificate_verifier(certificate_chain=[material])
cfg.verify(model, sig)  # otherwise the hashing configuration is read from the bundle
'''

ENCRYPT_KEY = r'''
import sys
from cryptography.hazmat.primitives import serialization
k = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
open(sys.argv[2], "wb").write(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
    serialization.BestAvailableEncryption(b"interop passphrase")))
'''

API_SIGN_ENCRYPTED = r'''
import sys, model_signing
model, sig, key = sys.argv[1:4]
model_signing.signing.Config().use_elliptic_key_signer(private_key=key, password=b"interop passphrase").sign(model, sig)
'''

API_SIGN = r'''
import sys, model_signing
model, sig, key, kind = sys.argv[1:5]
h = model_signing.hashing.Config()
if kind == "shards":
    h = h.use_shard_serialization(shard_size=100_000)
elif kind in ("blake2", "blake3"):
    h = h.use_file_serialization(hashing_algorithm=kind)
cfg = model_signing.signing.Config().use_elliptic_key_signer(private_key=key)
cfg.set_hashing_config(h)
cfg.sign(model, sig)
'''


def make_model(d: Path) -> Path:
    m = d / "model"
    shutil.copytree(REPO / "fixtures" / "signing" / "model", m)
    # Something bigger than one shard, and a deeper tree.
    (m / "shards").mkdir()
    (m / "shards" / "part-00001.bin").write_bytes(os.urandom(350_000))
    (m / "shards" / "part-00002.bin").write_bytes(os.urandom(1_000))
    return m


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mlsec", type=Path, default=REPO / "target" / "debug" / "mlsec")
    ap.add_argument("--venv", type=Path, default=Path(tempfile.gettempdir()) / "mlsec-interop-venv")
    args = ap.parse_args()
    mlsec = args.mlsec.resolve()
    if not mlsec.exists():
        subprocess.run(["cargo", "build", "-q", "-p", "mlsec"], cwd=REPO, check=True)
    py = ensure_venv(args.venv)
    ms = [py, "-m", "model_signing"]

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        make_pki(py, d)
        model = make_model(d)

        # 1. mlsec signs, model-signing verifies.
        for curve in ["p256", "p384", "p521"]:
            sig = d / f"mlsec-{curve}.sig"
            check(f"mlsec sign key {curve}", [mlsec, "sign", model, "--key", d / f"{curve}.key", "--signature", sig])
            check(f"model_signing CLI verifies mlsec {curve} bundle", [*ms, "verify", "key", model, "--signature", sig, "--public_key", d / f"{curve}.pub"])
            check(f"model_signing API verifies mlsec {curve} bundle", [py, "-c", API_VERIFY, model, sig, "key", d / f"{curve}.pub"])
        for flags, label in [(["--shard-size", "100000"], "shards"), (["--hash", "blake2b"], "blake2b"), (["--hash", "blake3"], "blake3")]:
            sig = d / f"mlsec-{label}.sig"
            check(f"mlsec sign {label}", [mlsec, "sign", model, "--key", d / "p256.key", "--signature", sig, *flags])
            extra = ["blake2"] if label == "blake2b" else []
            check(f"model_signing API verifies mlsec {label} bundle", [py, "-c", API_VERIFY, model, sig, "key", d / "p256.pub", *extra])
        sig = d / "mlsec-single.sig"
        check("mlsec sign a single file", [mlsec, "sign", model / "model.safetensors", "--key", d / "p256.key", "--signature", sig])
        check("model_signing CLI verifies mlsec single-file bundle", [*ms, "verify", "key", model / "model.safetensors", "--signature", sig, "--public_key", d / "p256.pub"])
        sig = d / "mlsec-ignore.sig"
        check("mlsec sign --ignore-paths", [mlsec, "sign", model, "--key", d / "p256.key", "--signature", sig, "--ignore-paths", model / "README.md"])
        check("model_signing API honours mlsec's signed ignore_paths", [py, "-c", API_VERIFY, model, sig, "key", d / "p256.pub"])
        sig = d / "mlsec-cert.sig"
        check("mlsec sign certificate", [mlsec, "sign", model, "--key", d / "leaf.key", "--cert", d / "leaf.pem", "--cert-chain", d / "intermediate.pem", "--signature", sig])
        check("model_signing CLI verifies mlsec certificate bundle", [*ms, "verify", "certificate", model, "--signature", sig, "--certificate_chain", d / "root.pem"])
        sig = d / "adapter-key.sig"
        check("mlsec sign-model (adapter, key)", [mlsec, "sign-model", "--method", "key", "--model-path", model, "--output-bundle", sig, "--private-key", d / "p384.key"])
        check("model_signing CLI verifies adapter key bundle", [*ms, "verify", "key", model, "--signature", sig, "--public_key", d / "p384.pub"])
        sig = d / "adapter-cert.sig"
        check("mlsec sign-model (adapter, certificate)", [mlsec, "sign-model", "--method", "certificate", "--model-path", model, "--output-bundle", sig, "--private-key", d / "leaf.key", "--signing-cert", d / "leaf.pem", "--cert-chain", d / "intermediate.pem"])
        check("model_signing CLI verifies adapter certificate bundle", [*ms, "verify", "certificate", model, "--signature", sig, "--certificate_chain", d / "root.pem"])

        # Encrypted keys: ours read by model-signing, cryptography's read by mlsec.
        env = dict(os.environ, MLSEC_KEY_PASSWORD="interop passphrase")
        check("mlsec keygen --encrypt", [mlsec, "keygen", "--out", d / "enc", "--encrypt", "--curve", "p384"], env=env)
        sig = d / "ms-enc.sig"
        # (model-signing's CLI `--password` passes a str where `cryptography` wants bytes, so use its API.)
        check("model_signing signs with mlsec's encrypted PKCS#8 key", [py, "-c", API_SIGN_ENCRYPTED, model, sig, d / "enc.key"])
        check("mlsec verifies it", [mlsec, "verify", model, "--key", d / "enc.pub", "--signature", sig])
        subprocess.run([str(py), "-c", ENCRYPT_KEY, d / "p256.key", d / "p256-enc.key"], check=True)
        check("mlsec signs with cryptography's encrypted PKCS#8 key", [mlsec, "sign", model, "--key", d / "p256-enc.key", "--signature", d / "mlsec-enc.sig"], env=env)
        check("model_signing verifies it", [*ms, "verify", "key", model, "--signature", d / "mlsec-enc.sig", "--public_key", d / "p256.pub"])

        # 2. model-signing signs, mlsec verifies.
        for curve in ["p256", "p384", "p521"]:
            sig = d / f"ms-{curve}.sig"
            check(f"model_signing CLI sign key {curve}", [*ms, "sign", "key", model, "--private_key", d / f"{curve}.key", "--signature", sig])
            check(f"mlsec verifies model_signing {curve} bundle", [mlsec, "verify", model, "--key", d / f"{curve}.pub", "--signature", sig])
            check(f"mlsec verify-model (adapter) {curve}", [mlsec, "verify-model", "--method", "key", "--model-path", model, "--bundle", sig, "--public-key", d / f"{curve}.pub"])
        for kind in ["shards", "blake2", "blake3"]:
            sig = d / f"ms-{kind}.sig"
            check(f"model_signing API sign {kind}", [py, "-c", API_SIGN, model, sig, d / "p256.key", kind])
            check(f"mlsec verifies model_signing {kind} bundle", [mlsec, "verify", model, "--key", d / "p256.pub", "--signature", sig])
        sig = d / "ms-cert.sig"
        check("model_signing CLI sign certificate", [*ms, "sign", "certificate", model, "--private_key", d / "leaf.key", "--signing_certificate", d / "leaf.pem", "--certificate_chain", d / "intermediate.pem", "--signature", sig])
        check("mlsec verifies model_signing certificate bundle", [mlsec, "verify", model, "--cert-chain", d / "root.pem", "--signature", sig])
        check("mlsec verify-model (adapter) certificate", [mlsec, "verify-model", "--method", "certificate", "--model-path", model, "--bundle", sig, "--cert-chain", d / "root.pem"])

        # Chains signed by RSA (PSS and PKCS#1 v1.5) and Ed25519 certificate authorities.
        sig = d / "ms-rsa-chain.sig"
        check("model_signing CLI sign certificate (RSA chain)", [*ms, "sign", "certificate", model, "--private_key", d / "rsa-leaf.key", "--signing_certificate", d / "rsa-leaf.pem", "--certificate_chain", d / "rsa-intermediate.pem", "--signature", sig])
        check("mlsec verifies it against the RSA root", [mlsec, "verify", model, "--cert-chain", d / "rsa-root.pem", "--signature", sig])
        check("mlsec refuses it against another root", [mlsec, "verify", model, "--cert-chain", d / "root.pem", "--signature", sig], expect_ok=False)
        sig = d / "ms-ed-chain.sig"
        check("model_signing CLI sign certificate (Ed25519 CA)", [*ms, "sign", "certificate", model, "--private_key", d / "ed-leaf.key", "--signing_certificate", d / "ed-leaf.pem", "--certificate_chain", d / "ed-root.pem", "--signature", sig])
        check("mlsec verifies it against the Ed25519 root", [mlsec, "verify", model, "--cert-chain", d / "ed-root.pem", "--signature", sig])

        # Symbolic links: both follow file links and skip directory links (model-signing's glob
        # does not recurse into them), so either one's signature verifies in the other.
        linked = d / "model-links"
        shutil.copytree(model, linked)
        (linked / "weights-link.bin").symlink_to("model.safetensors")
        (linked / "shards-link").symlink_to("shards", target_is_directory=True)
        sig = d / "ms-links.sig"
        check("model_signing CLI sign with symlinks", [*ms, "sign", "key", linked, "--private_key", d / "p256.key", "--signature", sig, "--allow_symlinks"])
        check("mlsec verifies it (directory link skipped, file link followed)", [mlsec, "verify", linked, "--key", d / "p256.pub", "--signature", sig, "--allow-symlinks"])
        sig = d / "mlsec-links.sig"
        check("mlsec sign with symlinks", [mlsec, "sign", linked, "--key", d / "p256.key", "--signature", sig, "--allow-symlinks"])
        check("model_signing CLI verifies it", [*ms, "verify", "key", linked, "--signature", sig, "--public_key", d / "p256.pub", "--allow_symlinks"])

        # 3. Tampering is caught by both, on each other's bundles.
        (model / "shards" / "part-00002.bin").write_bytes(os.urandom(1_000))
        check("model_signing rejects a tampered model (mlsec bundle)", [*ms, "verify", "key", model, "--signature", d / "mlsec-p256.sig", "--public_key", d / "p256.pub"], expect_ok=False)
        check("mlsec rejects a tampered model (model_signing bundle)", [mlsec, "verify", model, "--key", d / "p256.pub", "--signature", d / "ms-p256.sig"], expect_ok=False)
        check("model_signing rejects mlsec bundle under another key", [*ms, "verify", "key", model, "--signature", d / "mlsec-p384.sig", "--public_key", d / "p256.pub"], expect_ok=False)

    print(f"\n{PASSED} passed, {len(FAILURES)} failed")
    for f in FAILURES:
        print(f"  failed: {f}")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
