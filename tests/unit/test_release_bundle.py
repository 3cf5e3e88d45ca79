"""The release bundle's check (issue 14, item 1): each kind of damage or mismatch is refused
with its own one-line reason (``FirmwareInstallFailed``), and a good bundle passes.  The
bundles here are small real tar files with stand-in wheel files (the check reads the tar and
the hashes, never the wheels' insides); the real bundle of this product is
tests/system/test_release.py's."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from firmware.ports import FirmwareInstallFailed
from firmware.release.bundle import check
from firmware.release.installer import pip_error
from firmware.release.manifest import platform_tag
from firmware.release.signing import SigningFailed, sign_file
from tests.pki import Authority, _name

WHEELS = {
    "pi_chargepoint-1.2.3-py3-none-any.whl": b"product" * 100,
    "pip-26.0-py3-none-any.whl": b"pip" * 100,
    "ocpp-2.1.0-py3-none-any.whl": b"ocpp" * 100,
}


def manifest(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": 1,
        "product": "pi-chargepoint",
        "version": "1.2.3",
        "requires_python": ">=3.11",
        "platforms": ["cp311-linux_aarch64", platform_tag()],
        "wheels": {n: hashlib.sha256(b).hexdigest() for n, b in WHEELS.items()},
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def write(
    path: Path, meta: object, wheels: dict[str, bytes] = WHEELS, first: str = "manifest.json"
) -> Path:
    with tarfile.open(path, "w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        text = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
        add(first, text)
        for name, data in wheels.items():
            add(f"wheels/{name}", data)
    return path


def refused(path: Path) -> str:
    with pytest.raises(FirmwareInstallFailed) as caught:
        check(path)
    text = str(caught.value)
    assert "\n" not in text and text.startswith(path.name), text
    return text


def test_a_good_bundle_passes_and_its_wheels_unpack(tmp_path: Path) -> None:
    bundle = write(tmp_path / "b.tar", manifest())
    out = tmp_path / "out"
    out.mkdir()
    m = check(bundle, into=out)
    assert m.version == "1.2.3" and m.product_wheel.startswith("pi_chargepoint-1.2.3-")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == WHEELS


def _flip(data: bytes) -> bytes:
    return data[:10] + bytes([data[10] ^ 1]) + data[11:]


# (what is wrong, how the bundle is made, the reason's words)
CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    ("not a tar", lambda p: (p.write_bytes(b"GIF89a" * 200), p)[1], "is not a release bundle"),
    ("no file", lambda p: p, "no such file"),
    (
        "manifest not first",
        lambda p: write(p, manifest(), first="wheels/x.whl"),
        "the first member is not manifest.json",
    ),
    ("manifest not JSON", lambda p: write(p, b"{nope"), "manifest.json is not JSON"),
    ("manifest a list", lambda p: write(p, [1]), "is not a JSON object"),
    ("format", lambda p: write(p, manifest(format=2)), "manifest format 2 is not 1"),
    ("product", lambda p: write(p, manifest(product="other")), "is for 'other'"),
    ("version", lambda p: write(p, manifest(version="one")), "is not a version"),
    ("no version", lambda p: write(p, manifest(version=None)), "manifest version None"),
    (
        "requires_python",
        lambda p: write(p, manifest(requires_python=">=three")),
        "requires_python '>=three' is not valid",
    ),
    (
        "python too old",
        lambda p: write(p, manifest(requires_python=">=3.99")),
        "the release needs Python >=3.99, this is 3.",
    ),
    (
        "platform",
        lambda p: write(p, manifest(platforms=["cp311-linux_riscv64"])),
        f"is for cp311-linux_riscv64, not for this {platform_tag()}",
    ),
    ("platforms", lambda p: write(p, manifest(platforms="aarch64")), "platforms is not a list"),
    (
        "sha256 malformed",
        lambda p: write(
            p, manifest(wheels={**manifest()["wheels"], "ocpp-2.1.0-py3-none-any.whl": "x"})
        ),
        "sha256 of ocpp-2.1.0-py3-none-any.whl is not 64 hex digits",
    ),
    (
        "wheel name",
        lambda p: write(p, manifest(wheels={"../../etc/passwd": "0" * 64})),
        "that is not a wheel file name",
    ),
    (
        "no product wheel",
        lambda p: write(
            p,
            manifest(version="1.2.4"),
        ),
        "holds no wheel of pi-chargepoint 1.2.4",
    ),
    (
        "a wheel changed",
        lambda p: write(
            p,
            manifest(),
            {**WHEELS, "ocpp-2.1.0-py3-none-any.whl": _flip(WHEELS["ocpp-2.1.0-py3-none-any.whl"])},
        ),
        "sha256 of ocpp-2.1.0-py3-none-any.whl does not match",
    ),
    (
        "a wheel missing",
        lambda p: write(
            p, manifest(), {k: v for k, v in WHEELS.items() if not k.startswith("ocpp")}
        ),
        "is truncated: 1 wheel(s) missing, first ocpp-2.1.0-py3-none-any.whl",
    ),
    (
        "a wheel not in the manifest",
        lambda p: write(p, manifest(), {**WHEELS, "evil-1-py3-none-any.whl": b"x"}),
        "evil-1-py3-none-any.whl is not in the manifest",
    ),
    (
        "a member outside wheels/",
        lambda p: write(p, manifest(), {**WHEELS, "../x.whl": b"x"}),
        "unexpected member wheels/../x.whl",
    ),
]


def _truncated(p: Path) -> Path:
    write(p, manifest())
    data = p.read_bytes()
    p.write_bytes(data[: 512 + 1024 + 700])  # inside the second wheel's data
    return p


CASES.append(("truncated", _truncated, "is truncated or damaged"))


@pytest.mark.parametrize("make, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_damage_is_refused_with_its_reason(
    tmp_path: Path, make: Callable[[Path], Path], words: str
) -> None:
    assert words in refused(make(tmp_path / "bundle.tar"))


# ------------------------------------------------------------------ signing


def _files(tmp_path: Path, key: object, cert: x509.Certificate) -> tuple[Path, Path]:
    key_file, cert_file = tmp_path / "sign.key", tmp_path / "sign.pem"
    assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


@pytest.mark.parametrize("kind", ["rsa", "ecdsa"])
def test_sign_makes_the_signature_a_charger_verifies_with_the_certificate(
    tmp_path: Path, kind: str
) -> None:
    root = Authority.root("Test Manufacturer Root")
    key = (
        rsa.generate_private_key(65537, 2048)
        if kind == "rsa"
        else ec.generate_private_key(ec.SECP256R1())
    )
    cert = root.issue(_name("Firmware Signing", "Test Manufacturer"), key.public_key())
    key_file, cert_file = _files(tmp_path, key, cert)
    bundle = write(tmp_path / "b.tar", manifest())
    signed = sign_file(bundle, key_file, cert_file)
    # What the whitepaper's charger does: the certificate from the request, its public key,
    # the signature over SHA-256 of the downloaded file.
    chain_cert = x509.load_pem_x509_certificate(signed["signingCertificate"].encode())
    assert chain_cert == cert
    signature = base64.b64decode(signed["signature"])
    public = chain_cert.public_key()
    data = bundle.read_bytes()
    if kind == "rsa":
        assert isinstance(public, rsa.RSAPublicKey)
        public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        assert signed["algorithm"] == "RSA-SHA256"
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        assert signed["algorithm"] == "ECDSA-SHA256"
    # and it is over the whole file: one byte more and it fails
    digest = hashlib.sha256(data + b"\0").digest()
    with pytest.raises(InvalidSignature):
        if kind == "rsa":
            assert isinstance(public, rsa.RSAPublicKey)
            public.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))
        else:
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


def test_sign_refuses_a_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    root = Authority.root("Test Manufacturer Root")
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    cert = root.issue(_name("Firmware Signing"), other.public_key())
    key_file, cert_file = _files(tmp_path, key, cert)
    bundle = write(tmp_path / "b.tar", manifest())
    with pytest.raises(SigningFailed, match="is not the key of the certificate"):
        sign_file(bundle, key_file, cert_file)
    cert_file.write_text("not a certificate")
    with pytest.raises(SigningFailed, match="cannot use the certificate"):
        sign_file(bundle, key_file, cert_file)
    key_file.write_text("not a key")
    with pytest.raises(SigningFailed, match="cannot use the key"):
        sign_file(bundle, key_file, cert_file)


# ------------------------------------------------------------------ the command line


def test_release_check_and_sign_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from firmware.cli import main

    bundle = write(tmp_path / "b.tar", manifest())
    assert main(["release", "check", str(bundle)]) == 0
    assert "pi-chargepoint 1.2.3, 3 wheels, OK" in capsys.readouterr().out
    key = ec.generate_private_key(ec.SECP256R1())
    cert = Authority.root().issue(_name("Firmware Signing"), key.public_key())
    key_file, cert_file = _files(tmp_path, key, cert)
    assert (
        main(["release", "sign", str(bundle), "--key", str(key_file), "--cert", str(cert_file)])
        == 0
    )
    signed = json.loads((tmp_path / "b.tar.sig.json").read_text())
    assert set(signed) == {"signature", "signingCertificate", "algorithm"}
    capsys.readouterr()
    damaged = write(tmp_path / "d.tar", manifest(format=7))
    assert main(["release", "check", str(damaged)]) == 1
    assert capsys.readouterr().err == (
        "chargepoint release check: d.tar: manifest format 7 is not 1\n"
    )
    assert (
        main(
            [
                "release",
                "sign",
                str(tmp_path / "gone.tar"),
                "--key",
                str(key_file),
                "--cert",
                str(cert_file),
            ]
        )
        == 1
    )
    assert "cannot read" in capsys.readouterr().err


def test_release_build_refuses_a_directory_that_is_not_a_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from firmware.cli import main

    assert main(["release", "build", "--source", str(tmp_path), "--out", str(tmp_path)]) == 1
    assert "is not a checkout of pi-chargepoint (no pyproject.toml)" in capsys.readouterr().err


def test_sign_keeps_the_intermediates_of_the_certificate_file(tmp_path: Path) -> None:
    """A manufacturer signing with a certificate of an intermediate CA gives the file with the
    chain (signing certificate first): signingCertificate carries it whole, so a charger with
    only the root installed accepts it (Security Whitepaper L01, signingCertificate PEM)."""
    from firmware.certificates import CertificateStore, RootKind
    from tests.pki import pem

    root = Authority.root("Test Manufacturer Root")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = Authority(ca_key, root.issue(_name("Firmware CA"), ca_key.public_key(), ca=True))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue(_name("Firmware Signing", "Test Manufacturer"), key.public_key())
    key_file, cert_file = _files(tmp_path, key, cert)
    cert_file.write_text(pem(cert) + pem(ca.cert))
    bundle = write(tmp_path / "b.tar", manifest())
    signed = sign_file(bundle, key_file, cert_file)
    certs = CertificateStore.open(tmp_path / "state")
    certs.install_root(RootKind.MANUFACTURER, root.pem)
    assert certs.signing_certificate_problem(signed["signingCertificate"]) is None
    # A chain whose first certificate is not the key's is refused as before.
    cert_file.write_text(pem(ca.cert) + pem(cert))
    with pytest.raises(SigningFailed, match="is not the key of the certificate"):
        sign_file(bundle, key_file, cert_file)


def test_test_bundles_are_built_once_when_workers_ask_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scripts/test runs one pytest-xdist worker per core: after a change of the sources, two
    workers needing the test bundles at once must not build them into the same directory (one
    removed the other's cache, or FileExistsError): one builds, the other waits and reuses."""
    import threading
    import time

    from tests import release_bundles as rb

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / ".complete").touch()
    monkeypatch.setattr(rb, "WHEEL_CACHE", wheels)
    monkeypatch.setattr(rb, "CACHE", tmp_path / "release")
    building = [0]
    most = [0]

    def fake_build(_repo: Path, where: Path, *_a: object, **_kw: object) -> Path:
        building[0] += 1
        most[0] = max(most[0], building[0])
        time.sleep(0.3)  # a real build takes seconds: the other worker asks meanwhile
        building[0] -= 1
        return write(where / "pi-chargepoint-1.2.3-host.tar", manifest())

    def fake_variant(_base: Path, out_dir: Path, version: str, _patch: object) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        return write(out_dir / f"pi-chargepoint-{version}-host.tar", manifest())

    monkeypatch.setattr(rb, "build", fake_build)
    monkeypatch.setattr(rb, "make_variant", fake_variant)
    results: list[object] = []

    def worker() -> None:
        try:
            results.append(rb.bundles())
        except Exception as exc:  # noqa: BLE001 - the race shows as an exception
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not [r for r in results if isinstance(r, Exception)], results
    assert most[0] == 1 and results[0] == results[1]


# What pip download prints for an armv7l target on PyPI (checked 2026-11: cffi publishes no
# armv7l wheel; the conflict text lists every cryptography version first).
_CONFLICT_STDOUT = """\
The conflict is caused by:
    cryptography 50.0.2 depends on cffi>=2.0.0; platform_python_implementation != "PyPy"
    cryptography 44.0.1 depends on cffi>=1.12; platform_python_implementation != "PyPy"

Additionally, some packages in these conflicts have no matching distributions available \
for your environment:
    cffi

To fix this you could try to:
"""


@pytest.mark.parametrize(
    ("stdout", "stderr", "line"),
    [
        (
            _CONFLICT_STDOUT,
            "ERROR: Cannot install cryptography==44.0.1, cryptography==50.0.2 because these "
            "package versions have conflicting dependencies.\nERROR: ResolutionImpossible\n",
            "no matching distribution (wheel) of cffi",
        ),
        (
            "",
            "ERROR: Could not find a version that satisfies the requirement lgpio (from "
            "versions: none)\nERROR: No matching distribution found for lgpio\n",
            "no matching distribution (wheel) of lgpio",
        ),
        ("", "ERROR: invalid wheel\nsee https://pip.pypa.io\n", "ERROR: invalid wheel"),
    ],
)
def test_a_failed_pip_is_one_line_naming_the_project_without_a_wheel(
    stdout: str, stderr: str, line: str
) -> None:
    result = subprocess.CompletedProcess(["pip"], 1, stdout=stdout, stderr=stderr)
    assert pip_error(result) == line


def _usage(*, digital_signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=not digital_signature,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def test_a_certificate_whose_key_usage_leaves_out_digital_signature_signs_nothing(
    tmp_path: Path,
) -> None:
    """A certificate the manufacturer root issued for key encipherment only (a TLS server's
    RSA certificate) may not sign firmware (RFC 5280 §4.2.1.3): `release sign` refuses it, and
    so does the charger's check of SignedUpdateFirmware's signingCertificate."""
    from firmware.certificates import CertificateStore, RootKind
    from tests.pki import pem

    root = Authority.root("Test Manufacturer Root")
    key = rsa.generate_private_key(65537, 2048)
    tls_only = root.issue(
        _name("fw.example"), key.public_key(), key_usage=_usage(digital_signature=False)
    )
    key_file, cert_file = _files(tmp_path, key, tls_only)
    bundle = write(tmp_path / "b.tar", manifest())
    with pytest.raises(SigningFailed, match="does not include digitalSignature"):
        sign_file(bundle, key_file, cert_file)
    certs = CertificateStore.open(tmp_path / "state")
    certs.install_root(RootKind.MANUFACTURER, root.pem)
    problem = certs.signing_certificate_problem(pem(tls_only))
    assert problem is not None and "does not include digitalSignature" in problem
    signing = root.issue(
        _name("Firmware Signing"), key.public_key(), key_usage=_usage(digital_signature=True)
    )
    cert_file.write_text(pem(signing))
    assert sign_file(bundle, key_file, cert_file)["algorithm"] == "RSA-SHA256"
    assert certs.signing_certificate_problem(pem(signing)) is None


def test_sign_with_an_encrypted_key_takes_its_passphrase(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The usual way a signing key is kept: encrypted.  The passphrase comes from
    $CHARGEPOINT_SIGNING_PASSPHRASE (or --passphrase-env NAME, or the prompt on a terminal);
    without it, or a wrong one, one line and exit 1."""
    from firmware.cli import main

    key = ec.generate_private_key(ec.SECP256R1())
    cert = Authority.root().issue(_name("Firmware Signing"), key.public_key())
    key_file, cert_file = _files(tmp_path, key, cert)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"correct horse"),
        )
    )
    bundle = write(tmp_path / "b.tar", manifest())
    argv = ["release", "sign", str(bundle), "--key", str(key_file), "--cert", str(cert_file)]
    monkeypatch.delenv("CHARGEPOINT_SIGNING_PASSPHRASE", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal: no prompt
    assert main(argv) == 1
    assert "it is encrypted: give its passphrase" in capsys.readouterr().err
    monkeypatch.setenv("CHARGEPOINT_SIGNING_PASSPHRASE", "wrong")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("chargepoint release sign: cannot use the key") and err.count("\n") == 1
    monkeypatch.setenv("CHARGEPOINT_SIGNING_PASSPHRASE", "correct horse")
    assert main(argv) == 0
    signed = json.loads((tmp_path / "b.tar.sig.json").read_text())
    assert signed["algorithm"] == "ECDSA-SHA256"
    monkeypatch.setenv("MY_PASS", "correct horse")
    monkeypatch.delenv("CHARGEPOINT_SIGNING_PASSPHRASE")
    assert main([*argv, "--passphrase-env", "MY_PASS"]) == 0
