"""Configuration for a throwaway Synapse (tests and benchmarks): SQLite, one loopback listener,
rate limits out of the way, no outside traffic. Used by tests/acceptance/harness.py and
bench/compare.sh.

    python3 scripts/synapse_config.py DIR PORT [--open]

generates DIR/homeserver.yaml (Synapse's own generator) and DIR/overrides.yaml and prints the
`--config-path` arguments to start it with."""

import json
import subprocess
import sys
from pathlib import Path


def write_config(python: str, directory: Path, port: int, server_name: str = "localhost",
                 open_registration: bool = False) -> list[Path]:
    config = directory / "homeserver.yaml"
    subprocess.run(
        [python, "-m", "synapse.app.homeserver", "--server-name", server_name, "--config-path", str(config),
         "--data-directory", str(directory), "--generate-config", "--report-stats=no"],
        check=True, capture_output=True, cwd=directory, timeout=120,
    )
    lots = {"per_second": 100000, "burst_count": 100000}
    extra = {
        "listeners": [{"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
                       "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]}],
        "enable_registration": True,
        "registration_requires_token": not open_registration,
        "enable_registration_without_verification": open_registration,
        "rc_registration": lots,
        "rc_registration_token_validity": lots,
        "rc_login": {"address": lots, "account": lots, "failed_attempts": {"per_second": 0.001, "burst_count": 5}},
        "rc_message": lots,
        "rc_admin_redaction": lots,
        "rc_joins": {"local": lots, "remote": lots},
        "rc_joins_per_room": lots,
        "rc_3pid_validation": lots,
        "rc_invites": {"per_room": lots, "per_user": lots, "per_issuer": lots},
        "rc_presence": {"per_user": lots},
        "rc_delayed_event_mgmt": lots,
        "rc_room_creation": lots,
        "rc_reports": lots,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "report_stats": False,
        # Ward keeps no presence by default; compare like with like.
        "presence": {"enabled": False},
        # Newer Synapse lets only admins publish rooms by default; Ward lets room moderators.
        "room_list_publication_rules": [{"action": "allow"}],
    }
    # Synapse reads several config files, later top-level keys replacing earlier ones. JSON is
    # YAML, so no YAML library is needed.
    overrides = directory / "overrides.yaml"
    overrides.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in extra.items()))
    log_config = directory / f"{server_name}.log.config"
    if log_config.exists():
        # Warnings only: logging every request costs Synapse measurable time.
        log_config.write_text(log_config.read_text().replace("level: INFO", "level: WARNING"))
    return [config, overrides]


if __name__ == "__main__":
    d, p = Path(sys.argv[1]), int(sys.argv[2])
    paths = write_config(sys.executable, d, p, open_registration="--open" in sys.argv)
    print(" ".join(f"--config-path {x}" for x in paths))
