"""A rules file read and checked: YAML with the line of every key, then the schema.

Every error names the file, the line and the rule (`rules.yaml:12: rule big-disputes: route:
severity: must be one of sev1, sev2, sev3, sev4`), so a person can fix it without guessing;
all errors are collected, not only the first. What the expressions and templates inside a
valid document say is checked by `hub.rules.compiled`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Severity = Literal["sev1", "sev2", "sev3", "sev4"]
PROVIDERS = ("stripe", "github", "slack")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,79}")
REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
# A type pattern: the provider's own characters, plus `*` and `?` as globs (no classes: they
# have no SQL LIKE equivalent, and the API and the catch-up must agree with the worker).
TYPE = re.compile(r"[A-Za-z0-9_./*?-]+")


class RulesError(ValueError):
    """A rules file that cannot be used; `errors` are the lines a person reads."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    provider: str | None = None
    type: str | None = None
    where: str | None = None

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        if value is not None and value not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; known: {', '.join(PROVIDERS)}")
        return value

    @field_validator("type")
    @classmethod
    def _type_pattern(cls, value: str | None) -> str | None:
        if value is not None and not TYPE.fullmatch(value):
            raise ValueError("a type is letters, digits, `_./-`, and `*` or `?` as globs")
        return value


class Route(_Strict):
    slack_channel: str | None = Field(default=None, min_length=1, max_length=100)
    github_repo: str | None = Field(default=None, pattern=f"^{REPO.pattern}$")
    severity: Severity | None = None
    mention: str | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _says_something(self) -> Route:
        if not self.model_fields_set:
            raise ValueError("a route changes at least one of slack_channel, github_repo, "
                             "severity, mention")  # fmt: skip
        return self


class Incident(_Strict):
    key: str = Field(min_length=1)
    title: str = Field(min_length=1)
    summary: str = ""
    severity: Severity | None = None
    slack_channel: str | None = Field(default=None, min_length=1, max_length=100)
    github_repo: str | None = Field(default=None, pattern=f"^{REPO.pattern}$")
    mention: str | None = Field(default=None, min_length=1, max_length=200)
    resolve_when: Match | None = None


class Suppress(_Strict):
    reason: str = ""


class Rule(_Strict):
    name: str = Field(pattern=f"^{NAME.pattern}$")
    match: Match = Match()
    continue_: bool = Field(default=False, alias="continue")
    route: Route | None = None
    incident: Incident | None = None
    suppress: Suppress | None = None

    @field_validator("suppress", mode="before")
    @classmethod
    def _suppress_shorthand(cls, value: Any) -> Any:
        return {} if value is True or value is None else value  # `suppress: true`

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        actions = [a for a in ("route", "incident", "suppress") if a in self.model_fields_set]
        if len(actions) != 1:
            said = ", ".join(actions) or "none"
            raise ValueError(f"a rule has exactly one action: route, incident or suppress "
                             f"(this one has {said})")  # fmt: skip
        return self

    @property
    def action(self) -> str:
        return "route" if self.route else "incident" if self.incident else "suppress"


class Defaults(_Strict):
    slack_channel: str | None = Field(default=None, min_length=1, max_length=100)
    github_repo: str | None = Field(default=None, pattern=f"^{REPO.pattern}$")
    severity: Severity = "sev3"


@dataclass(frozen=True)
class Document:
    """A valid rules file: its rules in order, each with the line it starts on."""

    source: str
    defaults: Defaults
    rules: tuple[Rule, ...]
    lines: dict[str, _Lined]  # rule name -> its mapping, for the lines of its keys


class _Lined(dict[Any, Any]):
    """A YAML mapping that remembers where it and each of its keys were written."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, path: tuple[Any, ...]) -> int:
        """The line of the deepest key of `path` that exists (pydantic's error location)."""
        node: Any = self
        line = self.line
        for part in path:
            if isinstance(node, _Lined) and part in node:
                line = node.key_lines.get(part, line)
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
                line = getattr(node, "line", line)
            else:
                break
        return line


class _Loader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
    pass


def _mapping(loader: _Loader, node: yaml.MappingNode) -> _Lined:
    loader.flatten_mapping(node)
    lined = _Lined()
    lined.line, lined.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in lined:  # YAML keeps the last silently; a rule written twice is a mistake
            raise yaml.MarkedYAMLError(problem=f"duplicate key {key!r}",
                                       problem_mark=key_node.start_mark)  # fmt: skip
        lined[key] = loader.construct_object(value_node, deep=True)
        lined.key_lines[key] = key_node.start_mark.line + 1
    return lined


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
TOP_KEYS = ("defaults", "rules")


def parse(text: str, source: str) -> Document:
    """The document in `text` (from `source`, for the messages), or RulesError."""
    doc, errors = parse_collecting(text, source)
    if errors:
        raise RulesError(errors)
    return doc


def parse_collecting(text: str, source: str) -> tuple[Document, list[str]]:
    """The document with the rules that are valid, and the errors of the rest: so that the
    expressions of the valid rules are checked too, and one run reports everything."""
    try:
        top = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise RulesError([f"{source}:{line}: not valid YAML: {exc.problem}"]) from None
    except yaml.YAMLError as exc:
        raise RulesError([f"{source}:1: not valid YAML: {exc}"]) from None
    if top is None:
        top = _Lined()
    if not isinstance(top, _Lined):
        raise RulesError([f"{source}:1: a rules file is a mapping with `defaults` and `rules`"])
    errors = [
        f"{source}:{top.key_lines[key]}: unknown key {key!r}; a rules file has "
        + " and ".join(TOP_KEYS)
        for key in top
        if key not in TOP_KEYS
    ]
    defaults = _defaults(top, source, errors)
    rules, lines = _rules(top, source, errors)
    return Document(source, defaults, tuple(rules), lines), errors


def _defaults(top: _Lined, source: str, errors: list[str]) -> Defaults:
    raw = top.get("defaults") or {}
    try:
        return Defaults.model_validate(raw)
    except ValidationError as exc:
        node = raw if isinstance(raw, _Lined) else top
        errors.extend(_messages(exc, node, source, "defaults"))
        return Defaults()


def _rules(top: _Lined, source: str, errors: list[str]) -> tuple[list[Rule], dict[str, _Lined]]:
    raw = top.get("rules") or []
    if not isinstance(raw, list):
        errors.append(f"{source}:{top.key_lines.get('rules', 1)}: `rules` is a list of rules")
        return [], {}
    rules: list[Rule] = []
    lines: dict[str, _Lined] = {}
    for index, item in enumerate(raw):
        if not isinstance(item, _Lined):
            errors.append(f"{source}:{top.key_lines['rules']}: rule #{index + 1} is not a mapping")
            continue
        name = str(item.get("name") or f"#{index + 1}")
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            errors.extend(_messages(exc, item, source, f"rule {name}"))
            continue
        if rule.name in lines:
            first = lines[rule.name].line
            errors.append(f"{source}:{item.line}: rule {name}: the name is taken (line {first})")
            continue
        rules.append(rule)
        lines[rule.name] = item
    return rules, lines


def _messages(exc: ValidationError, node: _Lined, source: str, what: str) -> list[str]:
    out = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        line = node.line_of(loc)
        where = ": ".join(str(p) for p in loc if not str(p).startswith(("function-", "bool")))
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
            where = ": ".join(str(p) for p in loc[:-1])
        out.append(f"{source}:{line}: {what}: " + (f"{where}: " if where else "") + message)
    return out
