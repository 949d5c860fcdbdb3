"""The edge variants of the lab (``bgpctl lab up --edge``): containerlab files that equal containerlab.yml
except for node edge, and BIRD configurations that differ only in ADD-PATH (issue 9, point 6)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from bgpctl.errors import LabError
from bgpctl_lab import bird
from bgpctl_lab.topology import EDGE_VARIANTS, edge_topology, load

ROOT = Path(__file__).resolve().parents[2]


def _yaml(path: Path) -> dict:  # type: ignore[type-arg]
    return dict(YAML(typ="safe").load(path.read_text(encoding="utf-8")))


@pytest.mark.parametrize("variant", ["bird", "bird-no-addpath"])
def test_a_bird_variant_is_containerlab_yml_but_for_the_edge(variant: str) -> None:
    base, other = _yaml(ROOT / "containerlab.yml"), _yaml(ROOT / EDGE_VARIANTS[variant])
    edge = other["topology"]["nodes"].pop("edge")
    base["topology"]["nodes"].pop("edge")
    assert other == base
    assert edge["kind"] == "linux" and "bird" in edge["image"]
    topo = load(ROOT / EDGE_VARIANTS[variant])  # the runner's loader (schema-checked) accepts it
    assert topo.bird_nodes() == ["edge"] and "edge" not in topo.frr_nodes()
    assert edge_topology(ROOT / "containerlab.yml", variant) == (ROOT / EDGE_VARIANTS[variant]).resolve()


def test_an_unknown_edge_names_the_variants() -> None:
    with pytest.raises(LabError, match="use one of: frr, bird, bird-no-addpath"):
        edge_topology(ROOT / "containerlab.yml", "gobgp")


def test_the_bird_configs_differ_only_in_add_path() -> None:
    rx = (ROOT / "lab/edge-bird/bird.conf").read_text(encoding="utf-8").splitlines()
    off = (ROOT / "lab/edge-bird/bird-no-addpath.conf").read_text(encoding="utf-8").splitlines()
    code = [(a, b) for a, b in zip(rx, off, strict=True) if a != b and not a.startswith("#")]
    assert [(a.split("#")[0].strip(), b.split("#")[0].strip()) for a, b in code] == [
        ("add paths rx;", "add paths off;")
    ]


@pytest.mark.skipif(shutil.which("bird") is None, reason="BIRD 2 is not installed (apt-get install bird2)")
@pytest.mark.parametrize("conf", ["bird.conf", "bird-no-addpath.conf"])
def test_bird_parses_the_configs(conf: str) -> None:
    argv = ["bird", "-p", "-c", str(ROOT / "lab/edge-bird" / conf)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_bird_mode_commands() -> None:
    assert bird.mode_commands("controller") == ["disable tgw_use1", "disable tgw_usw2", "enable controller"]
    assert bird.mode_commands("no-controller") == ["disable controller", "enable tgw_use1", "enable tgw_usw2"]
    with pytest.raises(LabError, match="needs FRR's BFD"):
        bird.mode_commands("no-controller-bfd")
