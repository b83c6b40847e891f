"""Rules ready to run: every `where` compiled to CEL once, every template parsed once.

CEL is Google's Common Expression Language (the Rust `cel` crate's Python bindings): it
cannot loop forever, call out or touch the process, which is why users' expressions may run
inside the workers. Templates are Jinja2 in its immutable sandbox, with undefined values an
error rather than an empty string (an empty key would group unrelated events)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cel
from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hub.rules.document import Document, Match, Rule, RulesError, parse_collecting

# What a `where` may read. `incident` exists only for events the catalogue decided.
VARIABLES = frozenset({"payload", "provider", "type", "incident"})
# Comprehension macros bind their own names (`payload.items.exists(i, i.amount > 5)`).
_BINDER = re.compile(r"\.(?:all|exists|exists_one|map|filter)\(\s*([A-Za-z_]\w*)\s*,")
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class Miss(Exception):
    """A `where` that could not be evaluated for this event (a missing field, a type
    mismatch): the rule does not match, and the miss is counted."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(f"rule {rule}: {reason}")
        self.rule, self.reason = rule, reason


class TemplateFailed(RuntimeError):
    """A template that raised while rendering: the event's attempt fails with this (and is
    retried, so a fixed and reloaded rules file lets it through), never silently skipped."""


@dataclass(frozen=True)
class Condition:
    provider: str | None
    type_pattern: re.Pattern[str] | None
    type_text: str | None
    where: Any  # a compiled cel.Program, or None
    where_text: str | None

    def kinds(self) -> list[str]:
        """The `provider:type` patterns this matches, as the routes table stores them."""
        return [f"{self.provider or '*'}:{self.type_text or '*'}"]


@dataclass(frozen=True)
class Template:
    field: str
    source: str
    compiled: Any

    def render(self, rule: str, line: str, facts: Mapping[str, Any]) -> str:
        try:
            return str(self.compiled.render(**facts)).strip()
        except TemplateError as exc:
            raise TemplateFailed(f"rule {rule} ({line}): {self.field}: {exc}") from None


@dataclass(frozen=True)
class CompiledRule:
    spec: Rule
    line: str  # "rules.yaml:12", for messages
    match: Condition
    resolve_when: Condition | None
    templates: dict[str, Template]

    @property
    def name(self) -> str:
        return self.spec.name


def compile_document(doc: Document, errors: list[str] | None = None) -> tuple[CompiledRule, ...]:
    """Every rule compiled, or RulesError naming each expression and template that is wrong
    (after the document's own `errors`, if given)."""
    errors = [] if errors is None else errors
    compiled = [_rule(doc, rule, errors) for rule in doc.rules]
    if errors:
        raise RulesError(errors)
    return tuple(c for c in compiled if c is not None)


def load(text: str, source: str) -> tuple[Document, tuple[CompiledRule, ...]]:
    """The document and its rules compiled, or RulesError with every problem, in line order."""
    doc, errors = parse_collecting(text, source)
    try:
        return doc, compile_document(doc, errors)
    except RulesError as exc:
        raise RulesError(sorted(exc.errors, key=_line_of)) from None


def _line_of(error: str) -> int:
    found = re.match(r".*?:(\d+): ", error)
    return int(found.group(1)) if found else 0


def _rule(doc: Document, rule: Rule, errors: list[str]) -> CompiledRule | None:
    lined = doc.lines[rule.name]
    before = len(errors)

    def error(path: tuple[str, ...], message: str, offset: int = 0) -> None:
        errors.append(f"{doc.source}:{lined.line_of(path) + offset}: rule {rule.name}: {message}")

    match = _condition(rule.match, ("match",), error)
    resolve = None
    templates: dict[str, Template] = {}
    if rule.incident is not None:
        if rule.incident.resolve_when is not None:
            resolve = _condition(rule.incident.resolve_when, ("incident", "resolve_when"), error)
        for field in ("key", "title", "summary"):
            text = getattr(rule.incident, field)
            try:
                templates[field] = Template(field, text, _ENV.from_string(text))
            except TemplateSyntaxError as exc:
                error(("incident", field), f"incident: {field}: template: {exc.message}",
                      offset=max((exc.lineno or 1) - 1, 0))  # fmt: skip
    if len(errors) > before:
        return None
    return CompiledRule(rule, f"{doc.source}:{lined.line}", match, resolve, templates)


def _condition(match: Match, path: tuple[str, ...], error: Any) -> Condition:
    program = None
    if match.where is not None:
        program = compile_where(match.where, path, error)
    pattern = None
    if match.type is not None and any(c in match.type for c in "*?"):
        pattern = re.compile(fnmatch.translate(match.type))
    return Condition(match.provider, pattern, match.type, program, match.where)


def compile_where(text: str, path: tuple[str, ...], error: Any) -> Any:
    """`text` compiled, or None after telling `error` what is wrong with it."""
    where = (*path, "where")
    label = ": ".join(where)
    try:
        program = cel.compile(text)
    except (ValueError, RuntimeError) as exc:
        detail, offset = _cel_error(str(exc))
        error(where, f"{label}: {detail}", offset)
        return None
    bound = set(_BINDER.findall(text))
    unknown = sorted(set(program.variables()) - VARIABLES - bound)
    if unknown:
        known = ", ".join(sorted(VARIABLES))
        error(where, f"{label}: unknown variable {', '.join(unknown)} (a where reads {known})")
        return None
    return program


def _cel_error(message: str) -> tuple[str, int]:
    """The parser's complaint and its line within the expression, from the library's text
    (`... ERROR: <input>:2:3: Syntax error: ...`)."""
    found = re.search(r"<input>:(\d+):(\d+): (.*)", message)
    if found is None:
        return message.splitlines()[0] if message else "does not compile", 0
    line, column, what = int(found.group(1)), int(found.group(2)), found.group(3)
    return f"{what} (column {column})", line - 1


def matches(rule: str, cond: Condition, facts: Mapping[str, Any], env: Any) -> bool:
    """Does the event meet `cond`? Raises Miss when its `where` cannot be evaluated."""
    if cond.provider is not None and facts["provider"] != cond.provider:
        return False
    if cond.type_text is not None:
        if cond.type_pattern is None:
            if facts["type"] != cond.type_text:
                return False
        elif not cond.type_pattern.match(facts["type"]):
            return False
    if cond.where is None:
        return True
    try:
        result = cond.where.execute(env.get() if isinstance(env, LazyEnv) else env)
    except KeyError as exc:
        raise Miss(rule, f"where: no field {exc}") from None
    except Exception as exc:  # a type mismatch, a division by zero: the rule's, not ours
        raise Miss(rule, f"where: {type(exc).__name__}: {exc}") from None
    if not isinstance(result, bool):
        raise Miss(rule, f"where: gave {type(result).__name__}, not a bool")
    return result


def cel_env(facts: Mapping[str, Any]) -> Any:
    """The event's variables, converted for CEL once and shared by every rule."""
    env = cel.Context()
    env.update(dict(facts))
    return env


class LazyEnv:
    """`cel_env(facts)`, built the first time a `where` needs it. Converting a payload costs
    about 10 µs per 200 bytes, ten rules' worth; most events meet no `where` (their provider
    or type rules them out first), and a drain of failed payments under the example rules
    ran at half speed when every event paid for it."""

    def __init__(self, facts: Mapping[str, Any]) -> None:
        self._facts = facts
        self._env: Any = None

    def get(self) -> Any:
        if self._env is None:
            self._env = cel_env(self._facts)
        return self._env
