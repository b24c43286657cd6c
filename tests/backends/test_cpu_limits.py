"""Choosing the CPU limit method, on a made-up cgroup tree (the real one is tested by the real
runs): cgroup v2 must delegate the cpu controller down to the workers' cgroups."""

from __future__ import annotations

from pathlib import Path

from distbench.backends.local.limits import cpu


def v2_tree(root: Path, *, root_subtree: str) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text(root_subtree)
    return root


def test_cgroup_v2_enables_the_cpu_controller_down_to_the_workers(tmp_path: Path) -> None:
    root = v2_tree(tmp_path / "cgroup", root_subtree="memory pids\n")
    (root / "distbench").mkdir()
    (root / "distbench" / "cgroup.subtree_control").write_text("\n")
    method, parent = cpu.detect_method(root)
    assert method == "cgroup_v2_cpu_max"
    assert parent == root / "distbench"
    # A real cgroupfs turns "+cpu" into "cpu" in the list; a plain file keeps what was written.
    assert (root / "cgroup.subtree_control").read_text() == "+cpu\n"
    assert (root / "distbench" / "cgroup.subtree_control").read_text() == "+cpu\n"


def test_cgroup_v2_leaves_an_enabled_controller_alone(tmp_path: Path) -> None:
    root = v2_tree(tmp_path / "cgroup", root_subtree="cpu memory\n")
    (root / "distbench").mkdir()
    (root / "distbench" / "cgroup.subtree_control").write_text("cpu\n")
    assert cpu.detect_method(root)[0] == "cgroup_v2_cpu_max"
    assert (root / "cgroup.subtree_control").read_text() == "cpu memory\n"


def test_without_delegation_it_falls_back_to_affinity(tmp_path: Path) -> None:
    # No subtree_control file to write (as when the kernel refuses): not v2, and no v1 either.
    root = tmp_path / "cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (root / "cgroup.subtree_control").mkdir()  # unwritable as a file
    assert cpu.detect_method(root) == ("cpu_affinity", None)
