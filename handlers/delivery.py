"""GitHub CI/CD events: CI broken on the default branch, and failed deployments.

Each function takes a GitHub webhook payload and returns a Trigger or None; both open on a
failure and resolve on the next success, keyed so that the success finds the failure."""

from __future__ import annotations

import re
from collections.abc import Mapping

from handlers.triggers.model import Change, Link, Severity, Trigger, Version
from handlers.triggers.payload import (
    first_line,
    github_actor,
    opt_bool,
    opt_epoch,
    opt_int,
    opt_str,
    req_str,
)

CI_FAILED = frozenset({"failure", "timed_out", "startup_failure"})
DEPLOY_FAILED = frozenset({"failure", "error"})
# "production", "prod", and names that start with them: "prod-eu", "production/us-east".
PRODUCTION_NAME = re.compile(r"^(production|prod)([-_/. ].*)?$", re.IGNORECASE)


def track_ci_on_default_branch(payload: Mapping[str, object]) -> Trigger | None:
    """`workflow_run.completed`: a failed run on the default branch opens "CI broken";
    the next successful run of that workflow resolves it. Other branches, runs from forks,
    and cancelled/skipped/neutral runs are not news."""
    if opt_str(payload, "action") != "completed":
        return None
    repo = req_str(payload, "repository.full_name")
    default_branch = req_str(payload, "repository.default_branch")
    if not _on_default_branch(payload, repo, default_branch):
        return None
    conclusion = opt_str(payload, "workflow_run.conclusion")
    if conclusion is not None and conclusion in CI_FAILED:
        return _ci_broken(payload, repo, default_branch, conclusion)
    if conclusion == "success":
        return Trigger(
            change=Change.RESOLVE,
            key=ci_key(repo, _workflow_name(payload)),
            actor=github_actor(payload),
            note=f"CI passed again on {default_branch}: {_run_label(payload)}",
            # Run numbers order a workflow's runs: a late older failure is then stale.
            version=ci_version(payload),
        )
    return None


def track_deploy_status(payload: Mapping[str, object]) -> Trigger | None:
    """`deployment_status.created`: a failed or errored deployment opens "deploy failed"
    (sev1 for production); the next successful one to that environment resolves it."""
    if opt_str(payload, "action") not in (None, "created"):
        return None
    state = req_str(payload, "deployment_status.state")
    if state not in DEPLOY_FAILED and state != "success":
        return None  # pending, queued, in_progress, inactive
    repo = req_str(payload, "repository.full_name")
    environment = _environment(payload)
    key = deploy_key(repo, environment)
    if state == "success":
        return Trigger(
            change=Change.RESOLVE,
            key=key,
            actor=github_actor(payload),
            note=f"Deployed to {environment} successfully{_ref_suffix(payload)}",
            # When GitHub recorded this status (then its id): not when it reached us.
            version=deploy_version(payload),
        )
    severity = Severity.SEV1 if _is_production(payload, environment) else Severity.SEV2
    return Trigger(
        change=Change.OPEN,
        key=key,
        actor=github_actor(payload),
        title=f"Deploy failed: {repo} to {environment}",
        severity=severity,
        summary=_deploy_summary(payload, state, environment),
        links=_deploy_links(payload),
        note=f"Deployment to {environment} reported {state}{_ref_suffix(payload)}",
        # Same (status created_at, status id) as the success that resolves it.
        version=deploy_version(payload),
    )


def ci_key(repo: str, workflow: str) -> str:
    return f"github:ci:{repo}:{workflow}"


def deploy_key(repo: str, environment: str) -> str:
    return f"github:deploy:{repo}:{environment}"


def ci_version(payload: Mapping[str, object]) -> Version | None:
    """(run_number, run_attempt): GitHub numbers a workflow's runs in the order they start
    and counts re-runs within one, so a late run 41 sorts below run 43 whenever it arrives."""
    number = opt_int(payload, "workflow_run.run_number")
    if number is None:
        return None
    return (number, opt_int(payload, "workflow_run.run_attempt") or 1)


def deploy_version(payload: Mapping[str, object]) -> Version | None:
    """(status created_at in epoch seconds, status id): a status is immutable and stamped when
    GitHub records it; its id (increasing) breaks ties within one second. Without a time of
    its own the status is unordered (None) rather than given a wrong time."""
    created = opt_epoch(payload, "deployment_status.created_at")
    if created is None:
        created = opt_epoch(payload, "deployment_status.updated_at")
    if created is None:
        return None
    return (created, opt_int(payload, "deployment_status.id") or 0)


def _on_default_branch(payload: Mapping[str, object], repo: str, default_branch: str) -> bool:
    if opt_str(payload, "workflow_run.head_branch") != default_branch:
        return False
    # A pull request from a fork's own "main" also reports head_branch "main".
    head_repo = opt_str(payload, "workflow_run.head_repository.full_name")
    return head_repo is None or head_repo == repo


def _workflow_name(payload: Mapping[str, object]) -> str:
    name = opt_str(payload, "workflow_run.name") or opt_str(payload, "workflow.name")
    return name if name is not None else req_str(payload, "workflow_run.name")


def _ci_broken(
    payload: Mapping[str, object], repo: str, default_branch: str, conclusion: str
) -> Trigger:
    workflow = _workflow_name(payload)
    sha = (opt_str(payload, "workflow_run.head_sha") or "")[:7] or "unknown commit"
    message = first_line(opt_str(payload, "workflow_run.head_commit.message"))
    author = (
        opt_str(payload, "workflow_run.actor.login")
        or opt_str(payload, "workflow_run.head_commit.author.name")
        or "unknown"
    )
    commit = f"{sha} {message!r}" if message else sha
    run = _run_label(payload)
    url = opt_str(payload, "workflow_run.html_url")
    return Trigger(
        change=Change.OPEN,
        key=ci_key(repo, workflow),
        actor=github_actor(payload),
        title=f"CI broken on {default_branch}: {workflow} in {repo}",
        severity=Severity.SEV2,
        summary=f"{run} ended with {conclusion} on {commit} by {author}.",
        links=(Link("Workflow run", url),) if url else (),
        note=f"CI {conclusion.replace('_', ' ')} on {default_branch}: {run} ({sha})",
        # Same (run_number, run_attempt) as the success that resolves it.
        version=ci_version(payload),
    )


def _run_label(payload: Mapping[str, object]) -> str:
    workflow = _workflow_name(payload)
    number = opt_int(payload, "workflow_run.run_number")
    attempt = opt_int(payload, "workflow_run.run_attempt")
    label = f"{workflow} run #{number}" if number is not None else f"{workflow} run"
    return f"{label} (attempt {attempt})" if attempt is not None and attempt > 1 else label


def _environment(payload: Mapping[str, object]) -> str:
    found = opt_str(payload, "deployment_status.environment") or opt_str(
        payload, "deployment.environment"
    )
    return found if found is not None else req_str(payload, "deployment.environment")


def _is_production(payload: Mapping[str, object], environment: str) -> bool:
    if opt_bool(payload, "deployment.production_environment") is True:
        return True
    return PRODUCTION_NAME.match(environment.strip()) is not None


def _deploy_summary(payload: Mapping[str, object], state: str, environment: str) -> str:
    parts = [f"Deployment to {environment} reported {state}{_ref_suffix(payload)}."]
    description = opt_str(payload, "deployment_status.description")
    if description is not None:
        line = first_line(description, 300)
        parts.append(line if line.endswith((".", "!", "?", "…")) else f"{line}.")
    creator = opt_str(payload, "deployment_status.creator.login") or opt_str(
        payload, "deployment.creator.login"
    )
    if creator is not None:
        parts.append(f"Reported by {creator}.")
    return " ".join(parts)


def _ref_suffix(payload: Mapping[str, object]) -> str:
    ref = opt_str(payload, "deployment.ref")
    sha = (opt_str(payload, "deployment.sha") or "")[:7]
    if ref and sha:
        return f" ({ref} at {sha})"
    return f" ({ref or sha})" if ref or sha else ""


def _deploy_links(payload: Mapping[str, object]) -> tuple[Link, ...]:
    links: list[Link] = []
    for label, field in (
        ("Deployment", "target_url"),
        ("Logs", "log_url"),
        ("Environment", "environment_url"),
    ):
        url = opt_str(payload, f"deployment_status.{field}")
        if url is not None and all(link.url != url for link in links):
            links.append(Link(label, url))
    return tuple(links)
