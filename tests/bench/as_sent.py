"""The benchmark's payloads at the size providers send them.

The tests' builders (tests/handlers/payloads.py) keep only the fields a workflow reads: a
failed payment there is ~900 bytes. As Stripe sends it (API version 2024-06-20, two-space
indents) the same event carries every field of its object, most of them null, and the card
payment method inside `last_payment_error`: ~4 KB. A GitHub `workflow_run` is ~20 KB: the
run, its workflow, and three repositories with every API URL GitHub lists. Size decides
what the hub's hot path costs (the HMAC, the row, PostgreSQL's compression of values past
~2 KB, the worker's parse), so the benchmark sends the full shapes. The fields added here
are the documented ones, with the values an ordinary test-mode delivery has; the values the
builders set win over them."""

from __future__ import annotations

from typing import Any

Payload = dict[str, Any]

_PAYMENT_INTENT: Payload = {
    "amount_capturable": 0,
    "amount_details": {"tip": {}},
    "amount_received": 0,
    "application": None,
    "application_fee_amount": None,
    "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
    "canceled_at": None,
    "cancellation_reason": None,
    "capture_method": "automatic_async",
    "client_secret": "pi_3PQAcdLkdIwHu7ix1mV8Qn2B_secret_u2VnXbq0cRkDqT1tKc0a9BqWm",
    "confirmation_method": "automatic",
    "description": None,
    "invoice": None,
    "last_payment_error": None,
    "latest_charge": None,
    "next_action": None,
    "on_behalf_of": None,
    "payment_method": None,
    "payment_method_configuration_details": {"id": "pmc_1PQ1AaLkdIwHu7ixB2cD3eF4", "parent": None},
    "payment_method_options": {
        "card": {
            "installments": None,
            "mandate_options": None,
            "network": None,
            "request_three_d_secure": "automatic",
        },
        "link": {"persistent_token": None},
    },
    "payment_method_types": ["card", "link"],
    "processing": None,
    "receipt_email": None,
    "review": None,
    "setup_future_usage": None,
    "shipping": None,
    "source": None,
    "statement_descriptor": None,
    "statement_descriptor_suffix": None,
    "transfer_data": None,
    "transfer_group": None,
}


def _card_payment_method(customer: str | None) -> Payload:
    return {
        "id": "pm_1PQAcdLkdIwHu7ixq8WbZ1Rt",
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": {
                "city": None,
                "country": "US",
                "line1": None,
                "line2": None,
                "postal_code": "42424",
                "state": None,
            },
            "email": "jenny.rosen@example.com",
            "name": "Jenny Rosen",
            "phone": None,
        },
        "card": {
            "brand": "visa",
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": "pass",
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": "visa",
            "exp_month": 8,
            "exp_year": 2027,
            "fingerprint": "Xt5EWLLDS7FJjR1c",
            "funding": "credit",
            "generated_from": None,
            "last4": "9995",
            "networks": {"available": ["visa"], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": 1718000000,
        "customer": customer,
        "livemode": False,
        "metadata": {},
        "type": "card",
    }


def payment_intent(obj: Payload) -> Payload:
    """A PaymentIntent with every field; a failed one's error names its card payment method."""
    full = _PAYMENT_INTENT | obj
    error = full["last_payment_error"]
    if error is not None and "payment_method" not in error:
        pm = _card_payment_method(full.get("customer"))
        full["last_payment_error"] = {"advice_code": None, "param": None} | error
        full["last_payment_error"]["payment_method"] = pm
        full["payment_method"] = None  # detached from the intent once the attempt failed
    return full


_EVIDENCE_FIELDS = (
    "access_activity_log",
    "billing_address",
    "cancellation_policy",
    "cancellation_policy_disclosure",
    "cancellation_rebuttal",
    "customer_communication",
    "customer_email_address",
    "customer_name",
    "customer_purchase_ip",
    "customer_signature",
    "duplicate_charge_documentation",
    "duplicate_charge_explanation",
    "duplicate_charge_id",
    "product_description",
    "receipt",
    "refund_policy",
    "refund_policy_disclosure",
    "refund_refusal_explanation",
    "service_date",
    "service_documentation",
    "shipping_address",
    "shipping_carrier",
    "shipping_date",
    "shipping_documentation",
    "shipping_tracking_number",
    "uncategorized_file",
    "uncategorized_text",
)


def dispute(obj: Payload) -> Payload:
    """A Dispute with every field: the evidence form (all empty when it opens) and more."""
    evidence = dict.fromkeys(_EVIDENCE_FIELDS) | obj.get("evidence", {})
    evidence["enhanced_evidence"] = {}
    details = {"enhanced_eligibility": {}} | obj.get("evidence_details", {})
    return (
        {
            "balance_transaction": None,
            "enhanced_eligibility_types": [],
            "network_reason_code": "10.4",
            "payment_method_details": {
                "card": {"brand": "visa", "case_type": "chargeback", "network_reason_code": "10.4"},
                "type": "card",
            },
        }
        | obj
        | {"evidence": evidence, "evidence_details": details}
    )


# GitHub's API URLs for a repository, as `{name}: {path after the repository's API URL}`.
_REPO_URLS = {
    "forks_url": "/forks", "keys_url": "/keys{/key_id}",
    "collaborators_url": "/collaborators{/collaborator}", "teams_url": "/teams",
    "hooks_url": "/hooks", "issue_events_url": "/issues/events{/number}",
    "events_url": "/events", "assignees_url": "/assignees{/user}",
    "branches_url": "/branches{/branch}", "tags_url": "/tags", "blobs_url": "/git/blobs{/sha}",
    "git_tags_url": "/git/tags{/sha}", "git_refs_url": "/git/refs{/sha}",
    "trees_url": "/git/trees{/sha}", "statuses_url": "/statuses/{sha}",
    "languages_url": "/languages", "stargazers_url": "/stargazers",
    "contributors_url": "/contributors", "subscribers_url": "/subscribers",
    "subscription_url": "/subscription", "commits_url": "/commits{/sha}",
    "git_commits_url": "/git/commits{/sha}", "comments_url": "/comments{/number}",
    "issue_comment_url": "/issues/comments{/number}", "contents_url": "/contents/{+path}",
    "compare_url": "/compare/{base}...{head}", "merges_url": "/merges",
    "archive_url": "/{archive_format}{/ref}", "downloads_url": "/downloads",
    "issues_url": "/issues{/number}", "pulls_url": "/pulls{/number}",
    "milestones_url": "/milestones{/number}",
    "notifications_url": "/notifications{?since,all,participating}",
    "labels_url": "/labels{/name}", "releases_url": "/releases{/id}",
    "deployments_url": "/deployments",
}  # fmt: skip
_USER_URLS = {
    "followers_url": "/followers", "following_url": "/following{/other_user}",
    "gists_url": "/gists{/gist_id}", "starred_url": "/starred{/owner}{/repo}",
    "subscriptions_url": "/subscriptions", "organizations_url": "/orgs",
    "repos_url": "/repos", "events_url": "/events{/privacy}",
    "received_events_url": "/received_events",
}  # fmt: skip


def user(u: Payload) -> Payload:
    api = f"https://api.github.com/users/{u['login']}"
    urls = {name: api + path for name, path in _USER_URLS.items()}
    avatar = f"https://avatars.githubusercontent.com/u/{u['id']}?v=4"
    return (
        {"avatar_url": avatar, "gravatar_id": "", "url": api}
        | u
        | urls
        | {"user_view_type": "public"}
    )


def repository(repo: Payload, *, minimal: bool = False) -> Payload:
    """GitHub's repository object: in a `workflow_run`'s run the short form (ids, names and
    the API URLs), at the top of the payload the full one (counts, flags, dates, clone URLs)."""
    full_name = repo["full_name"]
    api = f"https://api.github.com/repos/{full_name}"
    urls = {"url": api} | {name: api + path for name, path in _REPO_URLS.items()}
    out = repo | {"owner": user(repo["owner"]), "description": "Payments service", "fork": False}
    out |= urls
    if minimal:
        return out
    return out | {
        "created_at": "2019-03-14T09:26:53Z", "updated_at": "2024-06-10T05:59:41Z",
        "pushed_at": "2024-06-10T06:09:58Z", "git_url": f"git://github.com/{full_name}.git",
        "ssh_url": f"git@github.com:{full_name}.git",
        "clone_url": f"https://github.com/{full_name}.git",
        "svn_url": f"https://github.com/{full_name}", "homepage": None, "size": 48213,
        "stargazers_count": 12, "watchers_count": 12, "language": "Python",
        "has_issues": True, "has_projects": False, "has_downloads": True, "has_wiki": False,
        "has_pages": False, "has_discussions": False, "forks_count": 3, "mirror_url": None,
        "archived": False, "disabled": False, "open_issues_count": 27, "license": None,
        "allow_forking": False, "is_template": False, "web_commit_signoff_required": False,
        "topics": ["payments", "python"], "visibility": "private", "forks": 3,
        "open_issues": 27, "watchers": 12, "custom_properties": {},
    }  # fmt: skip


def workflow_run(payload: Payload) -> Payload:
    """A `workflow_run` `completed` delivery with the run's, workflow's and repositories' full
    fields; an organisation's repository, so `organization` is there too."""
    run = dict(payload["workflow_run"])
    repo = payload["repository"]
    api = f"https://api.github.com/repos/{repo['full_name']}/actions"
    run_api = f"{api}/runs/{run['id']}"
    run |= {
        "check_suite_id": 24896521378,
        "check_suite_node_id": "CS_kwDOBB8Zxc8AAAAFzAbCdQ",
        "pull_requests": [],
        "created_at": run["run_started_at"],
        "updated_at": run["run_started_at"],
        "jobs_url": f"{run_api}/jobs",
        "logs_url": f"{run_api}/logs",
        "check_suite_url": f"{api.removesuffix('/actions')}/check-suites/24896521378",
        "artifacts_url": f"{run_api}/artifacts",
        "cancel_url": f"{run_api}/cancel",
        "rerun_url": f"{run_api}/rerun",
        "previous_attempt_url": None,
        "workflow_url": f"{api}/workflows/{payload['workflow']['id']}",
        "referenced_workflows": [],
        "url": run_api,
        "actor": user(run["actor"]),
        "triggering_actor": user(run["triggering_actor"]),
        "repository": repository(run["repository"], minimal=True),
        "head_repository": repository(run["head_repository"], minimal=True),
    }
    workflow = payload["workflow"] | {
        "node_id": "W_kwDOBB8Zxc4AAnY_", "created_at": "2019-03-14T09:40:11Z",
        "updated_at": "2024-05-02T14:21:07Z", "url": f"{api}/workflows/{payload['workflow']['id']}",
        "html_url": f"https://github.com/{repo['full_name']}/blob/main/{payload['workflow']['path']}",
        "badge_url": f"https://github.com/{repo['full_name']}/workflows/CI/badge.svg",
    }  # fmt: skip
    org = repo["owner"]
    org_api = f"https://api.github.com/orgs/{org['login']}"
    organization = {
        "login": org["login"], "id": org["id"], "node_id": org["node_id"], "url": org_api,
        "repos_url": f"{org_api}/repos", "events_url": f"{org_api}/events",
        "hooks_url": f"{org_api}/hooks", "issues_url": f"{org_api}/issues",
        "members_url": f"{org_api}/members{{/member}}",
        "public_members_url": f"{org_api}/public_members{{/member}}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{org['id']}?v=4",
        "description": None,
    }  # fmt: skip
    return payload | {
        "workflow_run": run,
        "workflow": workflow,
        "repository": repository(repo),
        "organization": organization,
        "sender": user(payload["sender"]),
    }
