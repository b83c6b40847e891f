"""A rules file checked: every error names the file, the line and the rule; the example in
deploy/ is clean; `hub rules check` prints the errors and exits 1, or one summary line and 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.cli.main import main
from hub.rules.document import RulesError
from hub.rules.state import parse_text, read

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "rules.example.yaml"


def errors_of(text: str) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_text(text, "rules.yaml")
    return caught.value.errors


def test_the_example_covers_every_action_and_is_clean():
    rules = read(str(EXAMPLE))
    assert {r.spec.action for r in rules.rules} == {"route", "incident", "suppress"}
    assert any(r.spec.continue_ for r in rules.rules)
    assert any(r.spec.incident and r.spec.incident.resolve_when for r in rules.rules)
    assert rules.defaults.slack_channel == "#incidents"


def test_hub_rules_check_passes_the_example(capsys):
    main(["rules", "check", str(EXAMPLE)])  # returns: exit 0
    out = capsys.readouterr().out
    assert out.startswith(f"{EXAMPLE}: 7 rules (incident, route, suppress), hash ")


def test_hub_rules_check_lists_every_error_with_file_line_and_rule(tmp_path, capsys):
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "rules:\n"
        "  - name: big-disputes\n"  # 2
        "    match:\n"
        "      provider: stripe\n"
        "      where: payload.data.object.amount >\n"  # 5: does not compile
        "    route: {slack_channel: '#payments'}\n"
        "  - name: subs\n"  # 7
        "    match: {type: customer.subscription.deleted}\n"
        "    incident:\n"
        "      key: 'stripe:sub:{{ payload.data.object.id }'\n"  # 10: template syntax
        "      title: cancelled\n"
    )
    with pytest.raises(SystemExit) as done:
        main(["rules", "check", str(bad)])
    assert done.value.code == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{bad}:5: rule big-disputes: match: where: Syntax error")
    assert lines[1].startswith(f"{bad}:10: rule subs: incident: key: template: unexpected '}}'")


def test_not_yaml_is_a_clear_error_with_its_line():
    (line,) = errors_of("rules:\n  - name: x\n    match: {provider: stripe\n")
    assert line.startswith("rules.yaml:4: not valid YAML: expected ',' or '}'")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: []\ncolour: red\n", "rules.yaml:2: unknown key 'colour'"),
        ("defaults: {slack: '#x'}\n", "rules.yaml:1: defaults: unknown key 'slack'"),
        (
            "rules:\n  - name: a\n    route: {slack_channel: '#x'}\n    colour: red\n",
            "rules.yaml:4: rule a: unknown key 'colour'",
        ),
        (
            "rules:\n  - name: a\n    match: {provider: strype}\n    suppress: true\n",
            "rules.yaml:3: rule a: match: provider: unknown provider 'strype'",
        ),
        (
            "rules:\n  - name: a\n    route: {severity: sev9}\n",
            "rules.yaml:3: rule a: route: severity: Input should be 'sev1'",
        ),
        (
            "rules:\n  - name: a\n    suppress: true\n    route: {severity: sev1}\n",
            "rules.yaml:2: rule a: a rule has exactly one action",
        ),
        ("rules:\n  - name: a\n    match: {}\n", "rules.yaml:2: rule a: a rule has exactly one"),
        (
            "rules:\n  - name: a\n    suppress: true\n  - name: a\n    suppress: true\n",
            "rules.yaml:4: rule a: the name is taken (line 2)",
        ),
        (
            "rules:\n  - name: a\n    match:\n      where: paylod.x == 1\n    suppress: true\n",
            "rules.yaml:4: rule a: match: where: unknown variable paylod",
        ),
        (
            "rules:\n  - name: a\n    match:\n      where: payload.x ==\n    suppress: true\n",
            "rules.yaml:4: rule a: match: where: Syntax error",
        ),
        (
            "rules:\n  - name: 'a b'\n    suppress: {}\n",
            "rules.yaml:2: rule a b: name: String should match pattern",
        ),
        (
            "rules:\n  - name: a\n    route: {github_repo: 'acme/x y'}\n",
            "rules.yaml:3: rule a: route: github_repo: String should match pattern",
        ),
        ("rules:\n  x: 1\n", "rules.yaml:1: `rules` is a list of rules"),
        ("- 1\n", "rules.yaml:1: a rules file is a mapping"),
        ("rules:\n  - name: a\n    name: b\n", "rules.yaml:3: not valid YAML: duplicate key"),
    ],
)
def test_each_mistake_is_named(text, expected):
    errors = errors_of(text)
    assert any(e.startswith(expected) for e in errors), errors


def test_a_comprehension_variable_is_not_unknown():
    rules = parse_text(
        "rules:\n  - name: any-big\n    match:\n"
        "      where: payload.items.exists(i, i.amount > 5)\n    suppress: true\n",
        "rules.yaml",
    )
    assert [r.name for r in rules.rules] == ["any-big"]


def test_an_empty_file_is_the_catalogue_alone():
    rules = parse_text("", "rules.yaml")
    assert rules.rules == () and rules.defaults.slack_channel is None
