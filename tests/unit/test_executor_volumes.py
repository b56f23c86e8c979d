"""Issue 16: a role's volume (role.yaml ``volumes:``) outlives its containers, carried out by the executor over the keys
tables' played container engine (test_executor_keys: every line a node is sent, no host touched), extended with
Docker's named volumes. The lab proves the lines on real hosts (docs/cardano.md: a manual run, until the pool's
lab exists)."""

from __future__ import annotations

import pytest

from nodeops.activation import MODELS
from nodeops.run.runner import ChangeFailed, ServiceRunner
from tests.unit.test_executor_keys import NAME, ROLE, Engine, Keys, check_secrets, make_job, seen, wanted


class Disks(Engine):
    """The played engine with Docker's named volumes, {node: {volume: what was written to it}}: a `docker run
    --volume NAME:PATH` creates NAME when the node has none (docker run's own creation) and its container writes
    to every volume it mounts at each run and start (a node appending to its chain); `docker rm` (with or without
    --force) leaves every named volume, as Docker does. Any `docker volume` line, or a `docker rm` asking to remove
    volumes, fails the test: nothing of the engine's may remove one."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: D107
        super().__init__(*args, **kwargs)
        self.volumes: dict[str, dict[str, list[str]]] = {}
        self.created: list[tuple[str, str]] = []

    def docker(self, node, box, argv):
        assert argv[0] != "volume" and not (argv[0] == "rm" and {"-v", "--volumes"} & set(argv)), argv
        disks = self.volumes.setdefault(node, {})
        out = super().docker(node, box, argv)
        if argv[0] == "run":
            name = argv[argv.index("--name") + 1]
            named = [argv[i + 1].split(":")[0] for i, w in enumerate(argv) if w == "--volume" and argv[i + 1][0] != "/"]
            for volume in named:
                if volume not in disks:
                    disks[volume] = []
                    self.created.append((node, volume))
            box[name]["mounts"] = named
            self.write(node, box[name], f"{box[name]['labels']['io.nodeops.config'][:6]} run")
        elif argv[0] == "start" and argv[-1] in box:
            self.write(node, box[argv[-1]], "start")
        return out

    def write(self, node, container, what):
        for volume in container.get("mounts", ()):
            self.volumes[node][volume].append(what)


VOLUME_ROLE = ROLE.replace("mount: /data\n", "mount: /data\nvolumes: {db: /var/lib/node/db}\n")


def test_a_volume_outlives_a_replace_and_a_put_back(tmp_path):
    """From nothing, each node's first run creates its volume; an upgrade's new containers mount the same one (what
    the old ones wrote is still there); a failed upgrade's previous container, put back, writes to it again. Never
    a second volume, nor a line that removes one."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v3").mkdir()
    first, second, third = (make_job(tmp_path / f"v{i}", image=f"reg/node:{i}", role=VOLUME_ROLE) for i in (1, 2, 3))
    engine = Disks({})
    for job in (first, second):
        run = Keys(job, engine)
        ServiceRunner(run).apply(MODELS["keys"].plan_change(job.service, seen(run), wanted(job)))
    assert engine.created == [("a", "nodeops-pool.db"), ("b", "nodeops-pool.db")]
    one, two = first.rendered.config_hash[:6], second.rendered.config_hash[:6]
    assert engine.volumes == {n: {"nodeops-pool.db": [f"{one} run", f"{two} run"]} for n in ("a", "b")}
    assert all(box[NAME]["mounts"] == ["nodeops-pool.db"] for box in engine.boxes.values())
    engine.dies_hot = {"a"}  # the third image's holder exits at once: a's previous container is put back
    run = Keys(third, engine)
    with pytest.raises(ChangeFailed, match="a's previous container was started again on its own inputs"):
        ServiceRunner(run).apply(MODELS["keys"].plan_change(third.service, seen(run), wanted(third)))
    three = third.rendered.config_hash[:6]
    assert engine.volumes["a"] == {"nodeops-pool.db": [f"{one} run", f"{two} run", f"{three} run", "start"]}
    assert engine.boxes["a"][NAME]["labels"]["io.nodeops.config"] == second.rendered.config_hash
    assert len(engine.created) == 2
    check_secrets(engine, {"a"})
