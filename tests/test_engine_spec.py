"""Unit tests of the OCI spec builder: Docker's merging rules, defaults and the seccomp profile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dockyard.engine.containers import seccomp, security, spec
from dockyard.engine.containers.errors import ContainerError, InvalidParameter
from dockyard.engine.containers.etcfiles import edit_hosts, host_names, hosts_file, resolv_conf
from dockyard.engine.containers.seccomp_default import default_profile
from dockyard.engine.containers.users import resolve_user

MOBY_PROFILE = Path("/tmp/moby-dev/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json")
IMAGE = {"Cmd": ["sh"], "Entrypoint": None, "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/srv", "User": "",
         "Labels": {"from": "image"}}


def test_entrypoint_and_cmd_merging() -> None:
    merged = spec.merge_config({"Cmd": None}, IMAGE)
    assert spec.path_and_args(merged) == ("sh", [])
    merged = spec.merge_config({"Entrypoint": ["echo"]}, IMAGE)  # a given entrypoint resets the image Cmd
    assert merged.get("Cmd") is None and spec.path_and_args(merged) == ("echo", [])
    merged = spec.merge_config({"Entrypoint": ["echo"], "Cmd": ["a"]}, {**IMAGE, "Entrypoint": ["/init"]})
    assert spec.path_and_args(merged) == ("echo", ["a"])
    merged = spec.merge_config({"Cmd": ["ls"]}, {**IMAGE, "Entrypoint": ["/init"]})
    assert spec.path_and_args(merged) == ("/init", ["ls"])
    merged = spec.merge_config({"Entrypoint": [""], "Cmd": ["ls", "-l"]}, {**IMAGE, "Entrypoint": ["/init"]})
    assert spec.path_and_args(merged) == ("ls", ["-l"])
    with pytest.raises(InvalidParameter, match="No command specified"):
        spec.merge_config({"Entrypoint": [""]}, IMAGE)


def test_env_labels_workdir_merging() -> None:
    merged = spec.merge_config({"Env": ["A=2", "B=3"], "Labels": {"x": "y"}}, IMAGE)
    assert merged["Env"] == ["PATH=/bin", "A=2", "B=3"]
    assert merged["Labels"] == {"from": "image", "x": "y"} and merged["WorkingDir"] == "/srv"
    assert spec.process_env({"Env": ["A=1"], "Tty": True}, "h")[1:] == ["HOSTNAME=h", "TERM=xterm", "A=1"]
    assert spec.process_env({"Env": ["PATH=/x"]}, "h")[0] == "PATH=/x"
    with pytest.raises(InvalidParameter, match="needs to be an absolute path"):
        spec.merge_config({"WorkingDir": "rel"}, IMAGE)


def test_user_resolution(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\napp:x:1001:\nextra:x:2000:app\nstaff:x:50:\n")
    root = str(tmp_path)
    assert resolve_user(root, "app") == {"uid": 1000, "gid": 1001, "additionalGids": [2000]}
    assert resolve_user(root, "app:staff")["gid"] == 50
    assert resolve_user(root, "4242:4343") == {"uid": 4242, "gid": 4343}
    assert resolve_user(root, "") == {"uid": 0, "gid": 0}
    with pytest.raises(ContainerError, match="unable to find user bob: no matching entries in passwd file"):
        resolve_user(root, "bob")


def test_capabilities_rules() -> None:
    assert security.capabilities({}) == security.DEFAULT_CAPS
    caps = security.capabilities({"CapAdd": ["sys_admin"], "CapDrop": ["CAP_CHOWN", "mknod"]})
    assert "CAP_SYS_ADMIN" in caps and "CAP_CHOWN" not in caps and "CAP_MKNOD" not in caps
    assert security.capabilities({"CapDrop": ["ALL"], "CapAdd": ["KILL"]}) == ["CAP_KILL"]
    assert "CAP_CHOWN" not in security.capabilities({"CapAdd": ["ALL"], "CapDrop": ["CHOWN"]})
    with pytest.raises(InvalidParameter):
        security.capabilities({"CapAdd": ["NOPE"]})


def _build(tmp_path: Path, hc: dict, config: dict | None = None) -> dict:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir(exist_ok=True)
    cfg = {"Cmd": ["sh"], "Env": [], **(config or {})}
    return spec.build_spec("ab" * 32, cfg, hc, str(rootfs), {"/etc/hosts": str(tmp_path / "hosts")})


def test_spec_defaults(tmp_path: Path) -> None:
    s = _build(tmp_path, {}, {"WorkingDir": "/made/here"})
    assert s["hostname"] == "abababababab" and s["linux"]["cgroupsPath"] == "/dockyard/" + "ab" * 32
    assert os.path.isdir(tmp_path / "rootfs/made/here") and s["process"]["cwd"] == "/made/here"
    shm = next(m for m in s["mounts"] if m["destination"] == "/dev/shm")
    assert "size=67108864" in shm["options"]
    assert {m["destination"] for m in s["mounts"]} >= {"/proc", "/dev", "/dev/pts", "/sys", "/sys/fs/cgroup",
                                                       "/dev/mqueue", "/etc/hosts"}
    assert "/proc/kcore" in s["linux"]["maskedPaths"] and "/proc/sys" in s["linux"]["readonlyPaths"]
    assert s["process"]["capabilities"]["bounding"] == security.DEFAULT_CAPS
    assert s["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO" and not s["process"]["noNewPrivileges"]
    assert "network" in {n["type"] for n in s["linux"]["namespaces"]} and s["hooks"]["createRuntime"]


def test_spec_options(tmp_path: Path) -> None:
    hc = {"Memory": 64 << 20, "NanoCpus": 1_500_000_000, "CpuShares": 512, "PidsLimit": 10, "ShmSize": 1 << 20,
          "Ulimits": [{"Name": "nofile", "Soft": 100, "Hard": 200}], "OomScoreAdj": 300, "NetworkMode": "host",
          "SecurityOpt": ["no-new-privileges", "seccomp=unconfined"], "ReadonlyRootfs": True,
          "Tmpfs": {"/run": "size=1m"}, "Init": True, "CgroupParent": "/mine"}
    s = _build(tmp_path, hc)
    res = s["linux"]["resources"]
    assert res["memory"] == {"limit": 64 << 20, "swap": 128 << 20}
    assert res["cpu"] == {"shares": 512, "period": 100000, "quota": 150000} and res["pids"] == {"limit": 10}
    assert s["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]
    assert s["process"]["oomScoreAdj"] == 300 and s["process"]["noNewPrivileges"] is True
    assert "seccomp" not in s["linux"] and "network" not in {n["type"] for n in s["linux"]["namespaces"]}
    assert s["root"]["readonly"] and s["process"]["args"] == ["/sbin/docker-init", "--", "sh"]
    assert s["linux"]["cgroupsPath"] == "/mine/" + "ab" * 32
    run = next(m for m in s["mounts"] if m["destination"] == "/run")
    assert run["type"] == "tmpfs" and "size=1m" in run["options"]
    privileged = _build(tmp_path, {"Privileged": True})
    assert "maskedPaths" not in privileged["linux"] and "seccomp" not in privileged["linux"]
    assert any(d["path"] == "/dev/null" for d in privileged["linux"]["devices"])


def test_etc_files() -> None:
    hosts = hosts_file("web", "", ["db:10.0.0.2"])
    assert hosts.startswith("127.0.0.1\tlocalhost\n") and "10.0.0.2\tdb\n" in hosts and "127.0.0.1\tweb" in hosts
    host = "nameserver 127.0.0.53\nnameserver 1.1.1.1\nsearch corp\noptions edns0\n"
    assert resolv_conf(host) == "nameserver 1.1.1.1\nsearch corp\noptions edns0\n"
    assert resolv_conf("nameserver 127.0.0.1\n").startswith("nameserver 8.8.8.8\nnameserver 8.8.4.4\n")
    assert resolv_conf(host, ["9.9.9.9"], ["x.y"], ["ndots:2"]) == "nameserver 9.9.9.9\nsearch x.y\noptions ndots:2\n"


def test_hosts_entries_of_networks(tmp_path: Path) -> None:
    """Docker's names for the container's lines, and the in-place edits of connect/disconnect."""
    assert host_names("web") == "web" and host_names("web", "corp.test") == "web.corp.test web"
    assert host_names("a.b") == "a.b a"
    path = tmp_path / "hosts"
    path.write_text(hosts_file("web", "", None, ["10.0.0.5", "10.1.0.5"]))
    inode = path.stat().st_ino
    edit_hosts(str(path), add=["10.2.0.5\tweb"], remove=["10.0.0.5\tweb"])
    text = path.read_text()
    assert text.startswith("127.0.0.1\tlocalhost\n") and text.endswith("\n10.1.0.5\tweb\n10.2.0.5\tweb\n")
    assert "10.0.0.5" not in text and path.stat().st_ino == inode


@pytest.mark.skipif(not MOBY_PROFILE.exists(), reason="moby's default profile not extracted (see the brief)")
@pytest.mark.parametrize("caps", [security.DEFAULT_CAPS, security.DEFAULT_CAPS + ["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"],
                                  security.all_caps()])
def test_seccomp_profile_matches_docker(caps: list[str]) -> None:
    theirs = seccomp.to_oci(json.loads(MOBY_PROFILE.read_text()), set(caps))
    ours = seccomp.to_oci(default_profile(), set(caps))
    assert seccomp.allowed(ours) == seccomp.allowed(theirs)
    assert ours["architectures"] == theirs["architectures"]
    errno_rules = [r for r in ours["syscalls"] if r["action"] != "SCMP_ACT_ALLOW"]
    assert errno_rules == [r for r in theirs["syscalls"] if r["action"] != "SCMP_ACT_ALLOW"]
