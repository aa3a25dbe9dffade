"""deploy/: the compose file and the systemd unit start a command mlgate accepts (Kubernetes: test_kubernetes.py).

Docker is not available here, so the files are checked statically (they parse; each command line is
parsed by the real ``mlgate server`` option parser and its settings validate; service names, bucket,
proxy address, probes and grace periods agree with each other), and then the compose file's mlgate
command itself is run, with only its service addresses pointed at local PostgreSQL, Redis and S3 servers.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import shlex
import signal
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from gateway.cli import server, server_settings
from tests.conftest import TEST_ADMIN_PASSWORD, TEST_SECRET_KEY, start_server
from tests.services import REDIS_URL, S3_TEST_CREDENTIALS, free_port, fresh_postgres_database, require_redis, s3_server

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SECRETS = {"MLGATE_SECRET_KEY": "k" * 48, "MLGATE_METRICS_TOKEN": "m" * 40}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def unit_exec_start() -> list[str]:
    text = (DEPLOY / "mlgate.service").read_text().replace("\\\n", " ")
    line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def unit_setting(name: str) -> str:
    return next(line.split("=", 1)[1] for line in (DEPLOY / "mlgate.service").read_text().splitlines()
                if line.startswith(f"{name}="))


def parsed(args: list[str]) -> dict:
    """The options ``mlgate server`` parses from ``args`` (click raises on an unknown flag or bad value)."""
    with server.make_context("server", list(args)) as ctx:
        return dict(ctx.params)


def checked(args: list[str]) -> dict:
    """Parse ``args`` and require their settings to validate; returns the parsed options."""
    options = parsed(args)
    settings = server_settings(options, SECRETS)
    assert settings.validate() == []
    return options


def test_the_compose_file_starts_mlgate_server_on_postgres_redis_and_s3():
    services = compose()["services"]
    assert {"mlgate", "postgres", "redis", "minio", "minio-bucket", "nginx"} <= set(services)
    mlgate = services["mlgate"]
    command = mlgate["command"]
    assert command[:2] == ["mlgate", "server"]
    assert mlgate["entrypoint"] == []  # the command is the whole command line
    options = checked(command[2:])
    # Every backing service is one of the file's services, at its standard port.
    db = urlsplit(options["backend_store_uri"])
    assert (db.scheme, db.hostname, db.port, db.password) == ("postgresql", "postgres", 5432, None)
    assert (urlsplit(options["redis_url"]).hostname, urlsplit(options["redis_url"]).port) == ("redis", 6379)
    bucket = urlsplit(options["artifacts_destination"])
    assert bucket.scheme == "s3"
    env = mlgate["environment"]
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert f"store/{bucket.hostname}" in " ".join(services["minio-bucket"]["command"])
    assert set(mlgate["depends_on"]) == {"postgres", "redis", "minio-bucket"}
    # Secrets come from the environment, each required: nothing secret on the command line.
    for name in ("MLGATE_SECRET_KEY", "MLGATE_ADMIN_PASSWORD", "MLGATE_METRICS_TOKEN", "PGPASSWORD",
                 "AWS_SECRET_ACCESS_KEY"):
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", env[name]), name
    assert services["postgres"]["environment"]["POSTGRES_USER"] == db.username
    assert services["postgres"]["environment"]["POSTGRES_DB"] == db.path.lstrip("/")
    # Only nginx is published, and it is the one trusted proxy, at its fixed address in the network.
    assert "ports" not in mlgate
    assert services["nginx"]["ports"] == ["443:443"]
    nginx_ip = services["nginx"]["networks"]["backend"]["ipv4_address"]
    assert options["trusted_proxies"] == f"{nginx_ip}/32"
    subnet = compose()["networks"]["backend"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(nginx_ip) in ipaddress.ip_network(subnet)
    nginx_conf = (DEPLOY / "nginx.conf").read_text()
    assert f"server_name {options['allowed_hosts']};" in nginx_conf
    assert "proxy_pass http://mlgate:5000;" in nginx_conf
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx_conf  # overwrite, never append
    # Readiness gates nginx; the grace period outlasts the graceful shutdown.
    assert "/ready" in " ".join(mlgate["healthcheck"]["test"])
    assert int(mlgate["stop_grace_period"].rstrip("s")) > options["shutdown_timeout"]


def test_the_systemd_unit_runs_mlgate_server_and_waits_for_the_graceful_stop():
    argv = unit_exec_start()
    assert argv[0].endswith("/mlgate")
    assert argv[1] == "server"
    options = checked(argv[2:])
    assert options["host"] == "127.0.0.1"  # behind the local reverse proxy
    assert options["trusted_proxies"] == "127.0.0.1/32"
    assert unit_setting("KillSignal") == "SIGTERM"
    assert int(unit_setting("TimeoutStopSec")) > options["shutdown_timeout"]
    assert unit_setting("EnvironmentFile") == "/etc/mlgate/mlgate.env"
    example = (DEPLOY / "mlgate.env.example").read_text()
    for name in ("MLGATE_SECRET_KEY", "MLGATE_ADMIN_PASSWORD", "MLGATE_METRICS_TOKEN"):
        assert f"\n{name}=\n" in example  # listed, and left empty: no shipped secret


def test_an_unknown_flag_in_a_deploy_file_would_be_caught():
    import click

    with pytest.raises(click.UsageError):
        parsed(["--host", "0.0.0.0", "--no-such-flag"])
    with pytest.raises(click.BadParameter):
        parsed(["--log-format", "yaml"])


def test_the_compose_command_runs_against_local_services(tmp_path: Path):
    """The compose file's mlgate command, with only its service addresses replaced, serves and stores in S3."""
    require_redis()
    command = compose()["services"]["mlgate"]["command"][2:]
    options = parsed(command)
    bucket = urlsplit(options["artifacts_destination"]).hostname
    port = free_port()
    token = secrets.token_urlsafe(32)
    with fresh_postgres_database() as uri, s3_server() as s3:
        s3.client().create_bucket(Bucket=bucket)
        local = {"0.0.0.0": "127.0.0.1", "5000": str(port), options["backend_store_uri"]: uri,
                 options["redis_url"]: REDIS_URL}
        args = [local.get(a, a) for a in command]
        assert [a for a in args if a not in command] == [local[a] for a in command if a in local]
        env = {"MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url, **S3_TEST_CREDENTIALS, "MLGATE_METRICS_TOKEN": token,
               "MLGATE_SECRET_KEY": TEST_SECRET_KEY, "MLGATE_ADMIN_PASSWORD": TEST_ADMIN_PASSWORD}
        running = start_server(tmp_path / "compose", uri, *args, env=env, port=port, timeout=120)
        try:
            host = {"Host": options["allowed_hosts"]}
            with httpx.Client(base_url=running.url, auth=running.admin_auth, headers=host, timeout=60) as http:
                ready = http.get("/ready")
                assert ready.json() == {"status": "ready", "checks": {"database": "ok", "redis": "ok"}}
                exp = http.post("/api/2.0/mlflow/experiments/create", json={"name": "deploy"}).json()["experiment_id"]
                run = http.post("/api/2.0/mlflow/runs/create", json={"experiment_id": exp}).json()["run"]["info"]
                put = http.put(f"/api/2.0/mlflow-artifacts/artifacts/{exp}/{run['run_id']}/artifacts/model.txt",
                               content=b"weights")
                assert put.status_code == 200, put.text
                scraped = http.get("/metrics", headers={"Authorization": f"Bearer {token}"}, auth=None)
                assert scraped.status_code == 200
                assert "mlgate_http_requests_total" in scraped.text
            keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
            assert any(k.startswith("mlartifacts/") and k.endswith(f"{run['run_id']}/artifacts/model.txt")
                       for k in keys), keys
            running.process.send_signal(signal.SIGTERM)
            assert running.process.wait(60) == 0
        finally:
            running.stop()


def test_server_flags_read_the_documented_variables(monkeypatch):
    monkeypatch.setenv("MLGATE_LOG_FORMAT", "json")
    monkeypatch.setenv("MLGATE_WORKERS", "3")
    monkeypatch.setenv("MLGATE_SERVER_DB_POOL_SIZE", "7")  # click's automatic name still works
    options = parsed([])
    assert (options["log_format"], options["workers"], options["db_pool_size"]) == ("json", 3, 7)
    assert parsed(["--workers", "2"])["workers"] == 2  # a flag wins over the variable
