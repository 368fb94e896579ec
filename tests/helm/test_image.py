"""The Dockerfile, read rather than built (no container daemon in the test environment): what it
copies is in the build context, and the image runs as the user, ports and command the chart
expects."""

import re

from chart import REPO, ci_values, render


def dockerfile_lines():
    return [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]


def test_every_copied_path_is_in_the_build_context():
    ignore = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()]
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, ".dockerignore should keep everything out but what the build reads"
    copied = []
    for line in dockerfile_lines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.extend(line.split()[1:-1])
    assert copied
    for path in copied:
        assert path.rstrip("/") in kept and (REPO / path).exists(), path


def test_the_build_is_locked_and_the_image_holds_only_the_binary():
    text = (REPO / "Dockerfile").read_text()
    assert "cargo build --release --locked" in text
    runtime = text.split("\nFROM ")[-1]
    assert [line for line in runtime.splitlines() if line.startswith("COPY")] == [
        "COPY --from=build /hooknorm /usr/local/bin/hooknorm"
    ]


def test_the_image_runs_as_the_charts_user_ports_and_command():
    rendered = render(ci_values("embedded"))
    lines = dockerfile_lines()
    (user,) = [line.split()[1] for line in lines if line.startswith("USER ")]
    pod = rendered.pod_spec()["securityContext"]
    assert user == f"{pod['runAsUser']}:{pod['runAsGroup']}"
    (expose,) = [line.split()[1:] for line in lines if line.startswith("EXPOSE ")]
    ports = {p["name"]: str(p["containerPort"]) for p in rendered.container()["ports"]}
    assert sorted(expose) == sorted(ports.values())
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    assert re.findall(r'"([^"]+)"', cmd) == rendered.container()["args"]
