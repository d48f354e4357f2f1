"""``sealcheck audit --cluster`` (issue 15) on real Dask clusters, TLS on, over real
backups on moto_server made with openssl: the results equal a local campaign's; a
worker killed mid-campaign loses and duplicates nothing; no private key, passphrase or
data key reaches the workers' side (their logs, the scheduler's task names, the
results, the records). gpg and CMS backups (their recipients inside the object) run on
the workers too, with only their session / content key.

Each test starts its own cluster: ``--cluster local:2`` (a LocalCluster inside the CLI,
``Security.temporary()``), or a scheduler and two workers as processes of this test
(``dask scheduler``/``dask worker`` with certificates made here by openssl), whose
logs it reads and one of which it kills."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from fixtures.common import run_cli
from fixtures.pipelines import RsaKey, export_secret_key, gpg_home_with_key, make_rsa_key, sh
from fixtures.s3servers import Bucket, S3Store
from sealcheck.core.decrypt.cms.key import probe_cms, unlock_cms
from sealcheck.core.formats import sniff
from sealcheck.core.keys.base import spki_fingerprint
from sealcheck.core.keys.pem import PemKey
from sealcheck.core.plumbing.progress import CancelToken
from sealcheck.core.records.history import History, Kind
from sealcheck.core.rotation.cmstext import BytesSource

distributed = pytest.importorskip("distributed")

# A scheduler serves its health/metrics routes over HTTP even with no dashboard, on
# 8787 unless told otherwise: whatever else runs on the machine (another test run, a
# user's Dask) then holds the port and Dask warns and moves. Every scheduler of these
# tests takes a free loopback port instead, and a warning here is a failure.
LOOPBACK_ANY_PORT = "127.0.0.1:0"
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

PEM_PW = "CANARYdaskpempass31"
PASS = "CANARYdasksymmetric58"  # a symmetric backup's passphrase: runs on the coordinator
DEKS = [f"CANARYdaskdek{i:02d}x0123456789abcdef" for i in range(6)]  # per-backup secrets


@dataclass
class Estate:
    bucket: Bucket
    key: RsaKey
    pw_file: Path
    pass_file: Path
    salts: list[bytes]
    good: int


def _dump(path: Path, rows: int) -> Path:
    """A mysqldump-like text with incompressible rows, so a verify takes a moment."""
    rnd = base64.b64encode(os.urandom(rows * 48)).decode()
    lines = [f"INSERT INTO `t` VALUES ({i},'{rnd[i * 64 : i * 64 + 64]}');" for i in range(rows)]
    path.write_text(
        "-- MySQL dump 10.13\nCREATE TABLE `t` (`id` int, `v` varchar(64));\n"
        + "\n".join(lines)
        + "\n-- Dump completed on 2026-01-01\n"
    )
    return path


@pytest.fixture(scope="module")
def estate(moto_store: S3Store, tmp_path_factory: pytest.TempPathFactory) -> Estate:
    root = tmp_path_factory.mktemp("dask-estate")
    key = make_rsa_key(root, "canary", 2048, passphrase=PEM_PW)
    pw_file = root / "pem-pw"
    pw_file.write_text(PEM_PW + "\n")
    pass_file = root / "symm"
    pass_file.write_text(PASS + "\n")
    bucket = moto_store.bucket()
    dump = _dump(root / "dump.sql", 12000)
    salts = []
    for i, dek in enumerate(DEKS):
        name = f"db{i % 3}.sql.gz"  # three backups, two versions each
        sh(
            f"gzip -c {dump} | openssl enc -aes-256-cbc -pass pass:{dek} > {name}\n"
            f"printf %s {dek} | openssl rsautl -encrypt -pubin -inkey {key.public} -out {name}.key",
            root,
        )
        data = (root / name).read_bytes()
        salts.append(data[8:16])
        if i == 5:
            data = data[:-700]  # cut short: FAILED
        bucket.put(f"db/{name}", data)
        bucket.put(f"db/{name}.key", (root / f"{name}.key").read_bytes())
    sh(f"gzip -c {dump} | openssl enc -aes-256-cbc -pass file:{pass_file} > sym.sql.gz.aes", root)
    bucket.put("db/sym.sql.gz.aes", (root / "sym.sql.gz.aes").read_bytes())
    return Estate(bucket, key, pw_file, pass_file, salts, good=6)


def audit(
    estate: Estate, data: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    r = run_cli(
        "audit",
        estate.bucket.uri("db/"),
        "--key",
        str(estate.key.private),
        "--key-passphrase-file",
        str(estate.pw_file),
        "--passphrase-file",
        str(estate.pass_file),
        "--endpoint-url",
        estate.bucket.endpoint,
        "--json",
        *args,
        env={**(env or os.environ), "SEALCHECK_DATA_DIR": str(data)},
        timeout=300,
    )
    assert r.stdout.strip(), r.stderr
    return r, json.loads(r.stdout)


def outcomes(data: Path) -> dict[tuple[str, str | None], Any]:
    """Per version: the verdict, the failed layer, the key that opened it and where it
    was held, and each layer's status: what must not depend on where it ran."""
    out: dict[tuple[str, str | None], Any] = {}
    for e in History(data / "history.sqlite3").entries():
        if e.kind is Kind.AUDIT:
            continue
        k = (e.subject.key, e.subject.version_id)
        assert k not in out, f"{k} recorded twice"
        r = json.loads(e.result_json)
        layers = {x["layer"]: x for x in r["layers"]}
        key = layers.get("key", {}).get("details", {})
        out[k] = (
            e.verdict.value,
            e.failed_layer,
            key.get("fingerprint"),
            key.get("key"),
            tuple((x["layer"], x["status"]) for x in r["layers"]),
            (r.get("error") or {}).get("kind"),
        )
    return out


def test_local_cluster_equals_local_campaign(
    estate: Estate, local_run: Any, tmp_path: Path
) -> None:
    a, local = local_run
    r2, dask = audit(estate, tmp_path / "dask", "--cluster", "local:2")
    assert r2.returncode == 1, r2.stderr  # one cut
    assert "Traceback" not in r2.stderr and r2.stderr.strip() == "", r2.stderr
    b = outcomes(tmp_path / "dask")
    assert a == b and len(a) == estate.good + 1
    fps = {v[2] for v in b.values() if v[2]}
    assert len(fps) == 1 and next(iter(fps)).startswith("SHA256:")
    assert any(v[3] and "PEM file" in v[3] for v in b.values())  # where it was held
    c = dask["campaign"]
    assert c["cluster"] == "local:2" and c["totals"] == local["campaign"]["totals"]
    assert c["totals"] == {"ok": estate.good, "failed": 1}
    assert History(tmp_path / "dask" / "history.sqlite3").check_chain() == []


# --- a scheduler and workers started by the test, over TLS ---------------------------


@dataclass
class Certs:
    ca: Path
    cert: Path
    key: Path

    def args(self) -> list[str]:
        return [
            "--tls-ca-file",
            str(self.ca),
            "--tls-cert",
            str(self.cert),
            "--tls-key",
            str(self.key),
        ]


def make_certs(folder: Path) -> Certs:
    """A CA and one certificate for the scheduler, the workers and the client."""
    folder.mkdir(parents=True, exist_ok=True)
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
        "-subj /CN=sealcheck-test-ca 2>/dev/null\n"
        "openssl req -newkey rsa:2048 -nodes -keyout node.key -out node.csr "
        "-subj /CN=127.0.0.1 2>/dev/null\n"
        "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf\n"
        "openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile ext.cnf -out node.pem 2>/dev/null",
        folder,
    )
    return Certs(folder / "ca.pem", folder / "node.pem", folder / "node.key")


@dataclass
class Cluster:
    """``dask scheduler`` and ``dask worker --no-nanny`` processes of this test, their
    logs at DEBUG in its folder."""

    folder: Path
    certs: Certs
    allowed_failures: int = 3  # Dask's default: a task is run again after its worker died
    address: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DASK_LOGGING__DISTRIBUTED": "debug",
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(self.allowed_failures),
        }
        log = (self.folder / f"{name}.log").open("wb")
        p = subprocess.Popen(
            [sys.executable, "-m", *args, *self.certs.args()],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.folder,
        )
        self.procs.append(p)
        return p

    def start(self, workers: int) -> None:
        sched = self.folder / "scheduler.json"
        self._start(
            "scheduler",
            "distributed.cli.dask_scheduler",
            "--host", "127.0.0.1", "--port", "0", "--protocol", "tls",
            "--no-dashboard", "--dashboard-address", LOOPBACK_ANY_PORT,
            "--scheduler-file", str(sched),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not sched.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(sched.read_text())["address"]
        for i in range(workers):
            self.workers.append(
                self._start(
                    f"worker{i}",
                    "distributed.cli.dask_worker",
                    self.address,
                    "--no-nanny",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--name",
                    f"w{i}",
                )
            )
        with self.client() as c:
            c.wait_for_workers(workers, timeout=60)

    def client(self) -> Any:
        from distributed.security import Security

        sec = Security(
            tls_ca_file=str(self.certs.ca),
            tls_client_cert=str(self.certs.cert),
            tls_client_key=str(self.certs.key),
            require_encryption=True,
        )
        return distributed.Client(self.address, security=sec, timeout="30s")

    def cli_args(self) -> list[str]:
        c = self.certs
        return [
            "--cluster", self.address,
            "--cluster-tls-ca", str(c.ca), "--cluster-tls-cert", str(c.cert),
            "--cluster-tls-key", str(c.key),
        ]  # fmt: skip

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _cluster(folder: Path, allowed_failures: int = 3) -> Any:
    c = Cluster(folder, make_certs(folder), allowed_failures)
    try:
        c.start(workers=2)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Shared by the tests that kill nothing."""
    yield from _cluster(tmp_path_factory.mktemp("cluster"))


@pytest.fixture(params=[3, 0], ids=["rescheduled", "killed-worker-error"])
def own_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """One whose worker the test kills. Its scheduler runs a task again after its worker
    died (Dask's default), or (allowed-failures 0) gives it up at once as KilledWorker:
    then the coordinator runs that item itself."""
    yield from _cluster(tmp_path / "cluster", request.param)


@pytest.fixture(scope="module")
def local_run(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The same campaign on this machine alone: what every cluster run must equal."""
    data = tmp_path_factory.mktemp("local")
    r, doc = audit(estate, data, "--parallel", "2")
    assert r.returncode == 1, r.stderr  # one cut
    return outcomes(data), doc


def start_audit(estate: Estate, cluster: Cluster, data: Path) -> subprocess.Popen[str]:
    """The CLI's campaign on the cluster, in the background (the test acts meanwhile)."""
    p = subprocess.Popen(
        [sys.executable, "-m", "sealcheck.core.cli", "audit", estate.bucket.uri("db/"),
         "--key", str(estate.key.private), "--key-passphrase-file", str(estate.pw_file),
         "--passphrase-file", str(estate.pass_file), "--endpoint-url", estate.bucket.endpoint,
         "--json", *cluster.cli_args()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SEALCHECK_DATA_DIR": str(data)},
    )  # fmt: skip
    return p


def test_a_worker_killed_mid_campaign_loses_and_duplicates_nothing(
    estate: Estate, own_cluster: Cluster, local_run: Any, tmp_path: Path
) -> None:
    cluster = own_cluster
    expected, local = local_run
    p = start_audit(estate, cluster, tmp_path / "dask")
    killed = None
    with cluster.client() as c:
        deadline = time.monotonic() + 120
        while killed is None and time.monotonic() < deadline and p.poll() is None:
            busy = [w for w, keys in c.processing().items() if keys]
            if busy:
                name = c.scheduler_info()["workers"][busy[0]]["name"]
                victim = cluster.workers[int(name[1:])]
                victim.kill()  # a worker of this test's cluster, mid-task
                killed = victim
            time.sleep(0.01)
        out, err = p.communicate(timeout=300)
        log = c.run_on_scheduler(
            lambda dask_scheduler: [str(t) for t in dask_scheduler.transition_log]
        )
    assert killed is not None, "no task was ever seen running"
    erred = [t for t in log if "sealcheck-audit-" in t and "'erred'" in t]
    # Given up by the scheduler: the coordinator ran those items itself.
    assert bool(erred) == (cluster.allowed_failures == 0), erred
    assert killed.wait(timeout=10) == -signal.SIGKILL
    assert p.returncode == 1, err  # the one cut backup, and only it
    assert "Traceback" not in err
    doc = json.loads(out)
    assert outcomes(tmp_path / "dask") == expected
    assert doc["campaign"]["totals"] == local["campaign"]["totals"]
    assert doc["campaign"]["complete"]


def forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"=")]


def canary_hits(
    needles: list[bytes],
    cluster: Cluster,
    tasks: list[str],
    r: subprocess.CompletedProcess[str],
    data: Path,
) -> list[str]:
    """Where any needle shows on the workers' side (their logs, the scheduler's task
    names and log) or in what came back (the results, stderr, the history)."""
    blobs = {
        "task names": "\n".join(tasks).encode(),
        "results": r.stdout.encode(),
        "stderr": r.stderr.encode(),
        "history": (data / "history.sqlite3").read_bytes(),
    }
    for log in cluster.folder.glob("*.log"):
        blobs[log.name] = log.read_bytes()
    assert len(blobs["worker0.log"]) > 0 and len(blobs["scheduler.log"]) > 0
    return [f"{where}: {n[:14]!r}" for where, b in blobs.items() for n in needles if n in b]


def test_no_secret_on_the_workers_side(estate: Estate, cluster: Cluster, tmp_path: Path) -> None:
    r, doc = audit(estate, tmp_path / "data", *cluster.cli_args())
    assert r.returncode == 1, r.stderr
    with cluster.client() as c:
        tasks = c.run_on_scheduler(
            lambda dask_scheduler: [str(t) for t in dask_scheduler.transition_log]
        )
    ran = {t.split("'")[1] for t in tasks if "sealcheck-audit-" in t}
    # Every wrapped-key backup ran on a worker; the symmetric one on the coordinator.
    assert len(ran) == len(DEKS), ran
    assert doc["campaign"]["on_cluster"] == len(DEKS)
    needles = forms(PEM_PW) + forms(PASS)
    for dek, salt in zip(DEKS, estate.salts, strict=True):
        needles += forms(dek)
        d1 = hashlib.sha256(dek.encode() + salt).digest()  # the AES key openssl derived
        needles += [d1.hex().encode(), d1.hex().upper().encode(), d1]
    pem_body = b"".join(estate.key.private.read_bytes().splitlines()[2:6])
    needles.append(pem_body)
    assert canary_hits(needles, cluster, tasks, r, tmp_path / "data") == []
    assert doc["campaign"]["totals"] == {"ok": estate.good, "failed": 1}


def test_max_duration_stops_cleanly_and_the_next_run_resumes(
    estate: Estate, cluster: Cluster, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    # The limit passes while the coordinator still connects to the scheduler (a TLS
    # handshake takes longer than a millisecond), so the first run stops on every
    # machine, however fast: a limit the work can beat made this test pass or fail
    # with the machine's speed (0.3 s was enough for all 7 items on the CI's).
    r1, first = audit(
        estate, data, "--slice", "1/1", "--max-duration", "0.001", *cluster.cli_args()
    )
    c1 = first["campaign"]
    assert c1["stopped"] == "max-duration" and not c1["complete"], r1.stderr
    assert c1["not_yet_checked"] > 0
    r2, second = audit(estate, data, "--slice", "1/1", *cluster.cli_args())
    c2 = second["campaign"]
    assert c2["id"] == c1["id"] and c2["complete"], r2.stderr
    assert c2["resumed"] or not c1["totals"]  # what the first run proved was skipped
    print("first run proved", c1["totals"])
    assert c2["totals"] == {"ok": estate.good, "failed": 1}
    assert len(outcomes(data)) == estate.good + 1  # each version recorded once (asserted)


def test_no_data_key_crosses_a_plain_tcp_scheduler(
    estate: Estate, local_run: Any, tmp_path: Path
) -> None:
    """tcp:// has no TLS: every item that needs a data key runs on the coordinator."""
    expected, _ = local_run
    with (
        distributed.LocalCluster(
            n_workers=1, processes=False, protocol="tcp://", host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs={"dashboard_address": LOOPBACK_ANY_PORT},
        ) as lc,
        distributed.Client(lc) as c,
    ):  # fmt: skip
        r, doc = audit(estate, tmp_path / "data", "--cluster", lc.scheduler_address)
        tasks = c.run_on_scheduler(
            lambda dask_scheduler: [str(t) for t in dask_scheduler.transition_log]
        )
    assert r.returncode == 1, r.stderr
    assert [t for t in tasks if "sealcheck-audit-" in t] == []
    assert outcomes(tmp_path / "data") == expected
    assert doc["campaign"]["cluster"] == lc.scheduler_address


def test_a_token_key_unwraps_on_the_coordinator(
    moto_store: S3Store, softhsm: Any, cluster: Cluster, tmp_path: Path
) -> None:
    """A PKCS#11 token key (SoftHSM2): its PIN is used on the coordinator only; the
    workers, which have no token, verify each backup with its data key alone, and each
    record names the token key and its fingerprint as a local run does."""
    spec = softhsm.keys["rsakey"]
    bucket = moto_store.bucket()
    dump = _dump(tmp_path / "dump.sql", 2000)
    for i in range(3):
        sh(
            f"secret=$(openssl rand -base64 32)\n"
            f"gzip -c {dump} | openssl enc -aes-256-cbc -pass pass:$secret > t.sql.gz\n"
            f"printf %s $secret | openssl pkeyutl -encrypt -pubin -inkey {spec.public} "
            "-pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256 -out t.sql.gz.key",
            tmp_path,
        )
        bucket.put(f"db/t{i}.sql.gz", (tmp_path / "t.sql.gz").read_bytes())
        bucket.put(f"db/t{i}.sql.gz.key", (tmp_path / "t.sql.gz.key").read_bytes())
    r = run_cli(
        "audit", bucket.uri("db/"), "--key", spec.uri(), "--pkcs11-module", softhsm.module,
        "--pin-file", str(softhsm.pin_file(tmp_path)), "--endpoint-url", bucket.endpoint,
        "--json", *cluster.cli_args(),
        env={**os.environ, "SEALCHECK_DATA_DIR": str(tmp_path / "data")}, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    with cluster.client() as c:
        log = c.run_on_scheduler(
            lambda dask_scheduler: [str(t) for t in dask_scheduler.transition_log]
        )
    found = outcomes(tmp_path / "data")
    pub = serialization.load_pem_public_key(spec.public.read_bytes())
    token_fp = spki_fingerprint(pub)
    assert len(found) == 3
    for verdict, _layer, fp, where, _layers, _err in found.values():
        assert verdict == "ok" and where and "PKCS#11 token 'backup'" in where
        assert fp == token_fp
    ran = {t.split("'")[1] for t in log if "sealcheck-audit-" in t}
    campaign = json.loads(r.stdout)["campaign"]["id"]
    assert len([k for k in ran if campaign in k]) == 3  # all three on the workers


@pytest.fixture
def doomed_cluster(tmp_path: Path) -> Any:
    """One whose scheduler the test kills."""
    yield from _cluster(tmp_path / "cluster")


@pytest.mark.slow  # ~35 s: a scheduler is killed and restarted mid-campaign
def test_the_scheduler_lost_mid_campaign_loses_nothing(
    estate: Estate, doomed_cluster: Cluster, local_run: Any, tmp_path: Path
) -> None:
    """The scheduler killed while tasks run: once the client gives up reconnecting
    (its 30 s timeout), the items in flight and those left run on the coordinator."""
    own_cluster = doomed_cluster
    expected, _ = local_run
    p = start_audit(estate, own_cluster, tmp_path / "dask")
    with own_cluster.client() as c:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            if any(c.processing().values()):
                break
            time.sleep(0.01)
    assert p.poll() is None, "the campaign ended before a task ran"
    own_cluster.procs[0].kill()  # the scheduler this test started
    out, err = p.communicate(timeout=300)
    assert p.returncode == 1 and "Traceback" not in err, err
    assert "Failed to reconnect to scheduler" in err  # Dask's own line: why it went local
    assert outcomes(tmp_path / "dask") == expected
    assert json.loads(out)["campaign"]["complete"]


# --- gpg and CMS: the recipients sit inside the object --------------------------------


@dataclass
class Envelopes:
    """Small gpg (``gpg -e``, binary and armored) and CMS (DER PKCS#1 v1.5, PEM OAEP)
    backups under ``env/`` in the estate's bucket; one gpg object damaged at its end
    (the MDC)."""

    key_file: Path  # the gpg secret key (exported), given with --gpg-key
    session_keys: list[str]  # each gpg backup's "ALGO:HEX", as gpg shows it
    ceks: list[bytes]  # each CMS backup's content key
    damaged: str


@pytest.fixture(scope="module")
def envelopes(estate: Estate, tmp_path_factory: pytest.TempPathFactory) -> Envelopes:
    root = tmp_path_factory.mktemp("dask-envelopes")
    home = gpg_home_with_key(root)
    key_file = export_secret_key(home, root / "gpg-key.asc")
    dump = _dump(root / "dump.sql", 1500)
    gpg = f"gpg --batch --homedir {home} --trust-model always --recipient backup@example.com"
    pw = f"pass:{PEM_PW}"
    sh(
        f"gzip -c {dump} > d.gz\n"
        f"{gpg} --encrypt < d.gz > g0.sql.gz.gpg\n"
        f"{gpg} --armor --encrypt < d.gz > g1.sql.gz.asc\n"
        f"{gpg} --encrypt < d.gz > gbad.sql.gz.gpg\n"
        f"openssl req -x509 -new -key {estate.key.private} -passin {pw} -subj /CN=backup "
        "-days 2 -out cert.pem 2>/dev/null\n"
        "openssl cms -encrypt -binary -aes-256-cbc -outform DER -in d.gz -out c0.sql.gz.p7m "
        "-recip cert.pem\n"
        "openssl cms -encrypt -binary -aes-256-gcm -outform PEM -in d.gz -out c1.sql.gz.enc "
        "-recip cert.pem -keyopt rsa_padding_mode:oaep",
        root,
    )
    bad = bytearray((root / "gbad.sql.gz.gpg").read_bytes())
    # Its last byte (the MDC): the head (its session key) and the plaintext are intact,
    # so gpg's verdict at the end is the one failure, on every run. A byte flipped
    # mid-way fails on cipher or decompress, whichever reader notices first.
    bad[-1] ^= 0x55
    (root / "gbad.sql.gz.gpg").write_bytes(bytes(bad))
    session_keys = []
    for name in ("g0.sql.gz.gpg", "g1.sql.gz.asc", "gbad.sql.gz.gpg"):
        st = subprocess.run(
            ["gpg", "--batch", "--homedir", str(home), "--status-fd", "2",
             "--show-session-key", "--decrypt", str(root / name)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False,
        ).stderr  # fmt: skip
        session_keys += [ln.split()[-1] for ln in st.splitlines() if " SESSION_KEY " in ln]
        estate.bucket.put(f"env/{name}", (root / name).read_bytes())
    priv = serialization.load_pem_private_key(estate.key.private.read_bytes(), PEM_PW.encode())
    ceks = []
    for name in ("c0.sql.gz.p7m", "c1.sql.gz.enc"):
        raw = (root / name).read_bytes()
        estate.bucket.put(f"env/{name}", raw)
        src = BytesSource(name, raw)
        fmt = sniff(raw[:4096])
        assert fmt is not None
        found = unlock_cms(
            probe_cms(src, fmt, raw[:4096]), [PemKey(priv, "t")], CancelToken(), name
        )
        ceks.append(bytes(found.cek))
    assert len(session_keys) == 3
    return Envelopes(key_file, session_keys, ceks, "env/gbad.sql.gz.gpg")


def env_audit(
    estate: Estate, envelopes: Envelopes, data: Path, *args: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    r = run_cli(
        "audit", estate.bucket.uri("env/"), "--key", str(estate.key.private),
        "--key-passphrase-file", str(estate.pw_file), "--gpg-key", str(envelopes.key_file),
        "--endpoint-url", estate.bucket.endpoint, "--json", *args,
        env={**os.environ, "SEALCHECK_DATA_DIR": str(data)}, timeout=300,
    )  # fmt: skip
    assert r.stdout.strip(), r.stderr
    return r, json.loads(r.stdout)


def key_proofs(data: Path) -> dict[tuple[str, str | None], Any]:
    """Per version: what its key layer proved, in words and details."""
    out = {}
    for e in History(data / "history.sqlite3").entries():
        if e.kind is not Kind.AUDIT:
            layers = {x["layer"]: x for x in json.loads(e.result_json)["layers"]}
            key = layers.get("key", {})
            out[(e.subject.key, e.subject.version_id)] = (key.get("proved"), key.get("details"))
    return out


def test_gpg_and_cms_run_on_workers_as_a_local_campaign_and_leave_no_secret(
    estate: Estate, envelopes: Envelopes, cluster: Cluster, tmp_path: Path
) -> None:
    """gpg and CMS backups: the coordinator unwraps the session / content key from the
    object's head and ships only that; every item runs on a worker, each record is what
    a local campaign records (the damaged gpg object fails on the same layer), and no
    key, passphrase, session key or content key reaches the workers' side."""
    r1, local = env_audit(estate, envelopes, tmp_path / "local", "--parallel", "2")
    assert r1.returncode == 1, r1.stderr  # the damaged one
    r2, dask = env_audit(estate, envelopes, tmp_path / "dask", *cluster.cli_args())
    assert r2.returncode == 1, r2.stderr
    assert "Traceback" not in r2.stderr and r2.stderr.strip() == "", r2.stderr
    a, b = outcomes(tmp_path / "local"), outcomes(tmp_path / "dask")
    assert a == b and len(b) == 5
    assert key_proofs(tmp_path / "local") == key_proofs(tmp_path / "dask")
    bad = [v for k, v in b.items() if k[0] == envelopes.damaged]
    assert len(bad) == 1 and bad[0][0] == "failed" and bad[0][1] == "cipher", bad
    cms = [v for k, v in b.items() if k[0].startswith("env/c")]
    assert all(v[0] == "ok" and v[3] and "PEM file" in v[3] for v in cms), cms
    assert dask["campaign"]["totals"] == local["campaign"]["totals"] == {"ok": 4, "failed": 1}
    with cluster.client() as c:
        tasks = c.run_on_scheduler(
            lambda dask_scheduler: [str(t) for t in dask_scheduler.transition_log]
        )
    campaign = dask["campaign"]["id"]
    ran = {t.split("'")[1] for t in tasks if f"sealcheck-{campaign}-" in t}
    assert len(ran) == 5, ran  # every gpg and CMS item ran on a worker
    # ... and its result is the worker's (none ran again on the coordinator)
    assert dask["campaign"]["on_cluster"] == 5
    # The canary: no secret on the workers' side, nor in what came back.
    needles = forms(PEM_PW)
    for sk in envelopes.session_keys:
        hexkey = sk.partition(":")[2]
        needles += [hexkey.encode(), hexkey.lower().encode(), bytes.fromhex(hexkey)]
    for cek in envelopes.ceks:
        needles += [cek, cek.hex().encode(), cek.hex().upper().encode()]
    needles += [b"".join(envelopes.key_file.read_bytes().splitlines()[3:6])]  # gpg key body
    needles.append(b"".join(estate.key.private.read_bytes().splitlines()[2:6]))
    assert canary_hits(needles, cluster, tasks, r2, tmp_path / "dask") == []
