"""A tiny run of ward-bench against Ward, so the benchmark tool keeps working. Not a timed
test: it asserts only that every scenario completes and that delivery is complete."""

import json
import subprocess
import tempfile
from pathlib import Path

from harness import ward_binary


def test_ward_bench_smoke(ward_factory):
    server = ward_factory("open", env={"WARD_LOG_LEVEL": "warn"})
    bench = ward_binary().with_name("ward-bench")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "result.json"
        r = subprocess.run(
            [str(bench), "run", "--url", server.url, "--label", "smoke", "--pid", str(server.proc.pid),
             "--out", str(out), "--clients", "3", "--rooms", "2", "--duration-s", "1", "--receivers", "2",
             "--rate", "20", "--delivery-duration-s", "1", "--sync-rooms", "3", "--sync-members", "2",
             "--sync-history", "2", "--join-members", "3"],
            capture_output=True, text=True, timeout=300,
        )
        assert r.returncode == 0, r.stderr
        result = json.loads(out.read_text())
    assert result["send"]["acknowledged"] > 0 and result["send"]["refused"] == 0
    assert result["delivery"]["acknowledged"] == 20
    assert result["delivery"]["missing"] == 0, result["delivery"]
    assert result["initial_sync"]["rooms_in_response"] == 3
    assert result["memory"]["idle_mib"] > 0
    assert "send throughput" in r.stdout
