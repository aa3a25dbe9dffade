"""A private OpenLDAP ``slapd`` for tests: its own config (slapd.conf via -f), its own CA and server certificate,
LDAPS and StartTLS on free loopback ports, seeded with users and groups.

Skips with the reason (and the install command) when slapd is absent; fails under CI=true (tests/services.py).
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.services import free_port, port_open, unavailable

SLAPD = "/usr/sbin/slapd"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
BASE = "dc=example,dc=org"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "root-secret-for-the-test-slapd"
SERVICE_DN = f"cn=mlgate,ou=services,{BASE}"
SERVICE_PASSWORD = "service-secret-for-the-test-slapd"
ML_TEAM = f"cn=ml-team,{GROUPS}"
OTHER_TEAM = f"cn=other-team,{GROUPS}"
# name -> password; every name is a uid under ou=people.
USERS = {
    "alice": "alice-directory-password-1",
    "bob": "bob-directory-password-1",
    "jürgen": "jurgen-directory-password-1",
    "carol": "carol-directory-password-1",
    "dave": "dave-directory-password-1",
}
MEMBERS = {ML_TEAM: ["alice", "jürgen", "carol", "dave"], OTHER_TEAM: ["bob"]}


def user_dn(name: str) -> str:
    """The DN of a seeded user."""
    return f"uid={name},{PEOPLE}"


@dataclass(frozen=True)
class Slapd:
    """A running test directory: where it listens and the files a client needs."""

    ldap_port: int
    ldaps_port: int
    ca_file: Path
    other_ca_file: Path
    workdir: Path
    process: subprocess.Popen

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://localhost:{self.ldaps_port}"

    @property
    def ldap_url(self) -> str:
        return f"ldap://localhost:{self.ldap_port}"

    def admin(self):
        """An ldap3 connection bound as the directory's root (to change users and groups in a test)."""
        from ldap3 import Connection, Server

        conn = Connection(Server("127.0.0.1", port=self.ldap_port), user=ROOT_DN, password=ROOT_PASSWORD,
                          raise_exceptions=True)
        conn.bind()
        return conn

    def remove_member(self, group_dn: str, name: str) -> None:
        """Take a user out of a group (memberOf follows: the memberof overlay)."""
        from ldap3 import MODIFY_DELETE

        with self.admin() as conn:
            conn.modify(group_dn, {"member": [(MODIFY_DELETE, [user_dn(name)])]})

    def add_member(self, group_dn: str, name: str) -> None:
        """Put a user into a group."""
        from ldap3 import MODIFY_ADD

        with self.admin() as conn:
            conn.modify(group_dn, {"member": [(MODIFY_ADD, [user_dn(name)])]})

    def log(self) -> str:
        path = self.workdir / "slapd.log"
        return path.read_text(errors="replace") if path.exists() else ""


def require_slapd() -> None:
    """OpenLDAP's slapd (Debian package slapd) and ldap3 must be installed."""
    if not os.path.exists(SLAPD) or not (SCHEMA_DIR / "inetorgperson.schema").exists():
        unavailable(f"{SLAPD} is not installed",
                    "DEBIAN_FRONTEND=noninteractive apt-get install -y slapd ldap-utils")
    try:
        import ldap3  # noqa: F401
    except ImportError:
        unavailable("ldap3 is not installed", "pip install -c requirements/lock.txt -e '.[test]'")


def _certificates(directory: Path) -> tuple[Path, Path, Path, Path]:
    """A CA, a server certificate for the name ``localhost`` only (not 127.0.0.1) and an unrelated CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def ca(name: str):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        return key, cert

    ca_key, ca_cert = ca("mlgate test LDAP CA")
    _, other_cert = ca("an unrelated CA")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key", directory / "other-ca.pem")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    paths[3].write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    return paths


_CONFIG = """\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/inetorgperson.schema
modulepath {modules}
moduleload back_mdb
moduleload memberof
pidfile {dir}/slapd.pid
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
# An unauthenticated bind (a DN with an empty password, RFC 4513 section 5.1.2) succeeds here, as on some
# production directories: mlgate must refuse empty passwords itself.
allow bind_anon_dn
database mdb
maxsize 16777216
suffix "{base}"
rootdn "{root}"
rootpw {root_password}
directory {dir}/data
overlay memberof
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="{service}" read by self read by * none
"""


def _seed(conn) -> None:
    conn.add(PEOPLE, ["organizationalUnit"], {"ou": "people"})
    conn.add(GROUPS, ["organizationalUnit"], {"ou": "groups"})
    conn.add(f"ou=services,{BASE}", ["organizationalUnit"], {"ou": "services"})
    conn.add(SERVICE_DN, ["person"], {"cn": "mlgate", "sn": "service", "userPassword": SERVICE_PASSWORD})
    for name, password in USERS.items():
        conn.add(user_dn(name), ["inetOrgPerson"], {"uid": name, "cn": name, "sn": name, "userPassword": password})
    for group, members in MEMBERS.items():
        conn.add(group, ["groupOfNames"], {"cn": group.split(",")[0][3:], "member": [user_dn(m) for m in members]})


@contextmanager
def slapd_server(timeout: float = 30) -> Iterator[Slapd]:
    """Run a seeded slapd on two free loopback ports (ldap:// with StartTLS, and ldaps://)."""
    require_slapd()
    from ldap3 import Connection, Server

    workdir = Path(tempfile.mkdtemp(prefix="mlgate-slapd-"))
    try:
        (workdir / "data").mkdir()
        ca, cert, key, other_ca = _certificates(workdir)
        conf = workdir / "slapd.conf"
        conf.write_text(_CONFIG.format(schema=SCHEMA_DIR, modules=MODULE_DIR, dir=workdir, ca=ca, cert=cert, key=key,
                                       base=BASE, root=ROOT_DN, root_password=ROOT_PASSWORD, service=SERVICE_DN))
        ldap_port, ldaps_port = free_port(), free_port()
        with open(workdir / "slapd.log", "wb") as log:
            # -d 0: stay in the foreground (this process owns it) without debug output.
            process = subprocess.Popen([SLAPD, "-f", str(conf), "-h",
                                        f"ldap://127.0.0.1:{ldap_port}/ ldaps://127.0.0.1:{ldaps_port}/", "-d", "0"],
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        server = Slapd(ldap_port, ldaps_port, ca, other_ca, workdir, process)
        try:
            deadline = time.monotonic() + timeout
            while not (port_open("127.0.0.1", ldap_port, 0.2) and port_open("127.0.0.1", ldaps_port, 0.2)):
                if process.poll() is not None or time.monotonic() > deadline:
                    unavailable(f"slapd did not start on 127.0.0.1:{ldap_port}: {server.log()[-2000:]}")
                time.sleep(0.05)
            with Connection(Server("127.0.0.1", port=ldap_port), user=ROOT_DN, password=ROOT_PASSWORD,
                            raise_exceptions=True, auto_bind=True) as conn:
                conn.add(BASE, ["dcObject", "organization"], {"dc": "example", "o": "example"})
                _seed(conn)
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
