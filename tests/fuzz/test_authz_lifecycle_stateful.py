"""Authorization over time: a model-based test of who may do what through create, rename, delete and re-create.

A hypothesis state machine drives the real app (in process, one fresh database per example) with random sequences
of account, group, membership, experiment, registered model, prompt, trace and grant changes, made as a client
would through the MLflow REST API (Basic auth for users, tokens for service accounts) and mlgate's admin API. A
small reference model (``Reference``) says what each principal may do; after every step that changed something,
every live principal's get, search and one write on every live and dead name and id must answer as it says, and
every dead account's credential must be refused:

* the creator of an experiment, registered model or prompt holds MANAGE on it; the administrator bypasses;
* a grant names one resource (it follows a rename and dies with a deleted model or account; a model that does
  not exist cannot be granted, not even by the administrator) or a name pattern (``experiment-name:shared/*``,
  ``model-name:shared-*``: it matches whatever is so named now);
* a deleted account's credential is refused (401), and its grants, memberships and tokens are gone;
* a soft-deleted experiment keeps its grants, so a restore brings back exactly its own;
* a re-created name, account or group starts with nothing but its creator's grant;
* a trace belongs to the experiment it was logged into last;
* a second workspace (``team-ws``) with one role (experiment and registered model "*" permissions of none,
  READ or EDIT), assigned and unassigned, deleted and re-created, and experiments, registered models and
  prompts named like 'default''s (created, renamed, deleted and re-created there, granted on through MLflow's
  permission API from there): from it, a member sees what the role and its grants by id give (never what a
  grant by name made outside its roles gives, nor a grant on the same-named model of 'default'), a non-member
  finds no workspace at all, and from 'default' nobody, the administrator included, finds any of its
  experiments or models; a deleted account's or role's assignments go with it. Half the examples start with
  the workspace made, dana a member through a role without permissions, holding READ by name patterns
  (``experiment-name:shared/*``, ``model-name:shared-*``) granted in 'default', and ``shared/e`` and
  ``shared-m`` made in the workspace: the grants by name must not reach them;
* hidden equals missing: what the caller may not READ answers 404 RESOURCE_DOES_NOT_EXIST exactly like a missing
  resource; readable but not writable answers 403 PERMISSION_DENIED.

The grant precedence is :mod:`policies.decide`'s, reduced to the one pattern per kind used here: the caller's own
grant on the id, else its groups' best on the id, else its own pattern grant, else its groups', else nothing.
Not modelled (their rules are still open, issue #18 findings 6 and 7): a non-admin creating or renaming into a
name a pattern grant covers (only the administrator does so here), and logging a trace id that is live in another
experiment. Bounded for CI: a fixed number of derandomized examples on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import itertools
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.settings import Settings
from tests.conftest import BACKENDS, TEST_ADMIN_TOKEN, TEST_SECRET_KEY, default_database, migrated

A = "/api/2.0/mlflow"
A3 = "/api/3.0/mlflow"
WS = "team-ws"
IN_WS = {"X-MLFLOW-WORKSPACE": WS}
ADMIN_API = "/api/2.0/mlgate"
# Many short sequences rather than few long ones: each finding of issue #18 needs three to six steps, and a
# failure's example shrinks faster from ten steps. About a minute per backend when nothing fails.
LIFECYCLE = settings(max_examples=20, stateful_step_count=10, derandomize=True, database=None, deadline=None,
                     suppress_health_check=list(HealthCheck))

NONE, READ, EDIT, MANAGE = range(4)
LEVELS = {"NO_PERMISSIONS": NONE, "READ": READ, "EDIT": EDIT, "MANAGE": MANAGE}
ADMIN = "admin"
ACCOUNT_NAMES = ("dana", "erin")
GROUP = "team"
# The one name pattern per kind: experiment-name:shared/* and model-name:shared-* (model names cannot hold "/").
EXPERIMENT_NAMES = ("e", "e2", "shared/e")
MODEL_NAMES = ("m", "m2", "m3", "shared-m")
TRACE_IDS = ("tr-lifecycle-1", "tr-lifecycle-2")
PROMPT_FILTER = "tags.`mlflow.prompt.is_prompt` = 'true'"
PROMPT_TAG = {"key": "mlflow.prompt.is_prompt", "value": "true"}

_SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None

OK = (200, None)
MISSING = (404, "RESOURCE_DOES_NOT_EXIST")
DENIED = (403, "PERMISSION_DENIED")
UNAUTHENTICATED = (401, "UNAUTHENTICATED")
ALREADY_EXISTS = (400, "RESOURCE_ALREADY_EXISTS")
NOT_ACTIVE = (400, "INVALID_PARAMETER_VALUE")  # a change inside a deleted experiment
INVALID_STATE = (400, "INVALID_STATE")  # renaming a deleted experiment, a trace into one


@dataclass
class Account:
    """A live account and the credential its client sends."""

    kind: str  # "user" (Basic auth) or "service" (a token)
    headers: dict[str, str]

    def subject(self, name: str) -> str:
        return f"{self.kind}:{name}"


@dataclass
class Experiment:
    name: str
    deleted: bool = False


@dataclass
class Model:
    """A registered model or prompt; the reference model keys it by a serial that survives renames."""

    name: str
    prompt: bool


# A grant's target: ("experiment", id), ("model", serial), or (pattern kind, glob) for the shared/* patterns.
Target = tuple[str, object]
EXPERIMENT_PATTERN: Target = ("experiment-name", "shared/*")
MODEL_PATTERN: Target = ("model-name", "shared-*")


def shared(name: str) -> bool:
    """Whether a name pattern grant covers ``name``."""
    return name.startswith(("shared/", "shared-"))


@dataclass
class Reference:
    """What the server should hold: accounts, the group, resources and grants, keyed by what never changes."""

    accounts: dict[str, Account] = field(default_factory=dict)
    members: set[str] | None = None  # the group's members; None: the group does not exist
    experiments: dict[str, Experiment] = field(default_factory=dict)
    models: dict[int, Model] = field(default_factory=dict)
    traces: dict[str, str] = field(default_factory=dict)  # trace id -> experiment id
    grants: dict[tuple[str, Target], int] = field(default_factory=dict)
    dead_credentials: list[dict[str, str]] = field(default_factory=list)
    # The workspace WS (None: not created yet), its one role (server id, experiment "*" level, holders) and
    # its experiments (id -> name; names taken from the same list as default's, so they are the same names).
    ws: str | None = None
    ws_role: int | None = None
    ws_role_level: int = NONE
    ws_permission: int | None = None
    ws_holders: set[str] = field(default_factory=set)
    ws_experiments: dict[str, str] = field(default_factory=dict)
    # The role's registered_model "*" permission (its id) and WS's models and prompts, keyed by serial like
    # 'default''s (serials are never reused, as the server's stable model ids).
    ws_model_permission: int | None = None
    ws_models: dict[int, Model] = field(default_factory=dict)

    def ws_model_named(self, name: str) -> int | None:
        return next((s for s, m in self.ws_models.items() if m.name == name), None)

    def ws_model_level(self, who: str, serial: int | None) -> int:
        """As ws_level, for a model of WS: the caller's own grant on it by id, else the role's level."""
        if serial is None:
            return NONE
        if who == ADMIN:
            return MANAGE
        if who not in self.ws_holders:
            return NONE
        own = self.grants.get((self.accounts[who].subject(who), ("model", serial)))
        return own if own is not None else self.ws_role_level

    def ws_may_name(self, who: str) -> bool:
        """Whether ``who`` may create or rename into a name in WS: the role's READ "*" claims every name there
        (creating needs EDIT under it); grants by name made outside WS's roles claim nothing there."""
        return who == ADMIN or self.ws_role_level != READ

    def ws_level(self, who: str, experiment_id: str) -> int:
        """What ``who`` holds on an experiment of WS, asking from WS: only the role and grants by id count
        there (a grant by name made outside WS's roles never reaches into it); not a member: nothing."""
        if who == ADMIN:
            return MANAGE
        if who not in self.ws_holders:
            return NONE
        own = self.grants.get((self.accounts[who].subject(who), ("experiment", experiment_id)))
        return own if own is not None else self.ws_role_level

    def experiment_named(self, name: str) -> str | None:
        return next((i for i, e in self.experiments.items() if e.name == name), None)

    def model_named(self, name: str) -> int | None:
        return next((s for s, m in self.models.items() if m.name == name), None)

    def level(self, who: str, target: Target, name: str, pattern: Target) -> int:
        """The permission ``who`` holds on a resource (decide()'s precedence for the grants used here)."""
        if who == ADMIN:
            return MANAGE
        own = self.accounts[who].subject(who)
        groups = [f"group:{GROUP}"] if self.members is not None and who in self.members else []
        tiers = [[own], groups]
        for tier_target in [target, pattern] if shared(name) else [target]:
            for subjects in tiers:
                held = [self.grants[(s, tier_target)] for s in subjects if (s, tier_target) in self.grants]
                if held:
                    return max(held)
        return NONE

    def experiment_level(self, who: str, experiment_id: str) -> int:
        experiment = self.experiments[experiment_id]
        return self.level(who, ("experiment", experiment_id), experiment.name, EXPERIMENT_PATTERN)

    def model_level(self, who: str, serial: int | None) -> int:
        if serial is None:
            return NONE
        return self.level(who, ("model", serial), self.models[serial].name, MODEL_PATTERN)

    def forget_subject(self, subject: str) -> None:
        """An account or group is gone: so are its grants."""
        self.grants = {k: v for k, v in self.grants.items() if k[0] != subject}

    def forget_target(self, target: Target) -> None:
        """A resource is gone for good: so are the grants on it."""
        self.grants = {k: v for k, v in self.grants.items() if k[1] != target}


def checked(level: int, needed: int, *, then: tuple[int, str | None] = OK) -> tuple[int, str | None]:
    """The answer to a request needing ``needed`` from a caller holding ``level``: hidden == missing."""
    if level < READ:
        return MISSING
    if level < needed:
        return DENIED
    return then


class Mismatch(AssertionError):
    """The server answered otherwise than the reference model says.

    One subclass per area (accounts, grants, experiments, models, traces): hypothesis tells failures apart by
    exception type, so it reports and shrinks a minimal example for each area instead of only the first found.
    """


MISMATCHES = {area: type(f"{area.capitalize()}Mismatch", (Mismatch,), {})
              for area in ("grant", "account", "experiment", "model", "trace")}


def mismatch(path: str, message: str) -> Mismatch:
    """The failure to raise for a wrong answer on ``path``."""
    for area, marker in (("grant", "permissions"), ("grant", "/grants/"), ("account", "/users/"),
                         ("account", "/groups/"), ("experiment", "/experiments/"), ("model", "/registered-models/")):
        if marker in path:
            return MISMATCHES[area](message)
    return MISMATCHES["trace"](message)


def outcome(response) -> tuple[int, str | None]:
    if response.status_code == 200:
        return OK
    try:
        return response.status_code, response.json().get("error_code")
    except ValueError:
        return response.status_code, None


class AuthorizationLifecycle(RuleBasedStateMachine):
    """The server against :class:`Reference`; subclassed per backend by the test below."""

    backend = "sqlite"
    workdir = Path(".")

    def __init__(self):
        super().__init__()
        # One fresh database per example; SQLite's file in memory (/dev/shm) where there is one: an example makes
        # hundreds of small commits (audit records of every denial), and the disk's fsyncs would dominate.
        self.where = where = Path(tempfile.mkdtemp(prefix="authz-lifecycle-", dir=_SCRATCH or self.workdir))
        policy = where / "policy.yaml"
        # The lowest bcrypt cost the policy allows (accounts are created often here), and no lockout: every check
        # tries each deleted account's old credential again (the lockout has tests of its own).
        policy.write_text("version: 1\nauth:\n  passwords: {hash_rounds: 10}\n"
                          "  lockout: {user_max_failures: 1000, address_max_failures: 100000}\n")
        self._database = default_database(where, self.backend)
        uri = self._database.__enter__()
        app = create_app(migrated(Settings(backend_store_uri=uri, artifacts_destination=str(where / "artifacts"),
                                           data_dir=str(where), dev_mode=True, secret_key=TEST_SECRET_KEY,
                                           policy_file=str(policy), enable_workspaces=True)))
        self.client = TestClient(app, base_url="http://127.0.0.1:5000").__enter__()
        self.ref = Reference()
        self.serials = itertools.count()
        self.changed = True
        try:
            # Every example starts from one small world, so that each rule changes something that is owned:
            # dana (a user) owns experiment e with a trace, and model m; erin (a service account) experiment e2
            # and prompt m2.
            self.create_account("dana", "user")
            self.create_account("erin", "service")
            self.create_experiment_as("dana", "e")
            self.create_experiment_as("erin", "e2")
            self.create_model_as("dana", "m", prompt=False)
            self.create_model_as("erin", "m2", prompt=True)
            self.log_trace_as("dana", TRACE_IDS[0], self.ref.experiment_named("e"))
        except BaseException:
            self.teardown()  # hypothesis tears down only machines it finished building
            raise

    def teardown(self):
        self.client.__exit__(None, None, None)
        self._database.__exit__(None, None, None)
        shutil.rmtree(self.where, ignore_errors=True)

    # --- requests -------------------------------------------------------------------------------
    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TEST_ADMIN_TOKEN}"} if who == ADMIN else self.ref.accounts[who].headers

    def call(self, who: str, method: str, path: str, body: dict | None = None, *, headers: dict | None = None,
             workspace: bool = False):
        headers = headers or self.headers(who)
        if workspace:
            headers = {**headers, **IN_WS}
        if method in ("GET", "DELETE"):
            return self.client.request(method, path, params=body, headers=headers)
        return self.client.request(method, path, json=body, headers=headers)

    def act(self, who: str, method: str, path: str, body: dict | None, expected: tuple[int, str | None], *,
            workspace: bool = False):
        """Make a change as ``who`` and require the answer the reference model predicts."""
        response = self.call(who, method, path, body, workspace=workspace)
        got = outcome(response)
        if got != expected:
            raise mismatch(path, f"{who} {method} {path} {body}: expected {expected}, got {got}: {response.text[:300]}")
        if got == OK:
            self.changed = True
        return response

    def principal(self, data) -> str:
        return data.draw(st.sampled_from([ADMIN, *sorted(self.ref.accounts)]), label="actor")

    def admin_unless_plain(self, who: str, name: str) -> str:
        # Creating or renaming into a pattern-covered name is left to the administrator (see the docstring).
        return ADMIN if shared(name) else who

    # --- accounts, the group, memberships ---------------------------------------------------------
    def create_account(self, name: str, kind: str) -> None:
        if kind == "user":
            password = "Pw-" + secrets.token_urlsafe(12)
            self.act(ADMIN, "POST", f"{A}/users/create", {"username": name, "password": password}, OK)
            headers = {"Authorization": "Basic " + _basic(name, password)}
        else:
            self.act(ADMIN, "POST", f"{A}/users/create", {"username": name, "service_account": True}, OK)
            token = self.act(ADMIN, "POST", f"{A}/users/tokens/create",
                             {"name": "t", "expires_in_days": 1, "username": name}, OK).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}
        self.ref.accounts[name] = Account(kind, headers)

    @rule(name=st.sampled_from(ACCOUNT_NAMES), kind=st.sampled_from(["user", "service"]))
    def create_or_delete_account(self, name, kind):
        if name in self.ref.accounts:
            self.delete_account(name)
        else:
            self.create_account(name, kind)

    @precondition(lambda self: self.ref.accounts)
    @rule(data=st.data(), kind=st.sampled_from(["user", "service"]))
    def recreate_account(self, data, kind):
        """Delete an account and make one of the same name at once (as single sign-on would)."""
        name = data.draw(st.sampled_from(sorted(self.ref.accounts)), label="account")
        self.delete_account(name)
        self.create_account(name, kind)

    def delete_account(self, name: str) -> None:
        account = self.ref.accounts[name]
        self.act(ADMIN, "DELETE", f"{A}/users/delete", {"username": name}, OK)
        del self.ref.accounts[name]
        self.ref.dead_credentials.append(account.headers)
        self.ref.forget_subject(account.subject(name))
        self.ref.ws_holders.discard(name)  # its role assignments go with it
        if self.ref.members is not None:
            self.ref.members.discard(name)

    @rule()
    def create_or_delete_group(self):
        if self.ref.members is None:
            self.act(ADMIN, "POST", f"{ADMIN_API}/groups/create", {"name": GROUP}, OK)
            self.ref.members = set()
        else:
            self.act(ADMIN, "POST", f"{ADMIN_API}/groups/delete", {"name": GROUP}, OK)
            self.ref.members = None
            self.ref.forget_subject(f"group:{GROUP}")

    @precondition(lambda self: self.ref.members is not None and self.ref.accounts)
    @rule(data=st.data())
    def add_or_remove_member(self, data):
        name = data.draw(st.sampled_from(sorted(self.ref.accounts)), label="member")
        if name in self.ref.members:
            self.act(ADMIN, "POST", f"{ADMIN_API}/groups/remove-member", {"group": GROUP, "username": name}, OK)
            self.ref.members.discard(name)
        else:
            self.act(ADMIN, "POST", f"{ADMIN_API}/groups/add-member", {"group": GROUP, "username": name}, OK)
            self.ref.members.add(name)

    # --- experiments ----------------------------------------------------------------------------
    @rule(data=st.data(), name=st.sampled_from(EXPERIMENT_NAMES))
    def create_experiment(self, data, name):
        self.create_experiment_as(self.admin_unless_plain(self.principal(data), name), name)

    def create_experiment_as(self, who: str, name: str) -> None:
        if self.ref.experiment_named(name) is not None:  # deleted experiments keep their names
            self.act(who, "POST", f"{A}/experiments/create", {"name": name}, ALREADY_EXISTS)
            return
        response = self.act(who, "POST", f"{A}/experiments/create", {"name": name}, OK)
        experiment_id = response.json()["experiment_id"]
        self.ref.experiments[experiment_id] = Experiment(name)
        if who != ADMIN:
            self.ref.grants[(self.ref.accounts[who].subject(who), ("experiment", experiment_id))] = MANAGE

    @precondition(lambda self: self.ref.experiments)
    @rule(data=st.data(), new_name=st.sampled_from(EXPERIMENT_NAMES))
    def rename_experiment(self, data, new_name):
        experiment_id = data.draw(st.sampled_from(sorted(self.ref.experiments)), label="experiment")
        experiment = self.ref.experiments[experiment_id]
        who = self.admin_unless_plain(self.principal(data), new_name)
        taken = self.ref.experiment_named(new_name) not in (None, experiment_id)
        then = INVALID_STATE if experiment.deleted else ALREADY_EXISTS if taken else OK
        expected = checked(self.ref.experiment_level(who, experiment_id), MANAGE, then=then)
        self.act(who, "POST", f"{A}/experiments/update", {"experiment_id": experiment_id, "new_name": new_name},
                 expected)
        if expected == OK:
            experiment.name = new_name

    @precondition(lambda self: self.ref.experiments)
    @rule(data=st.data(), action=st.sampled_from(["delete", "restore"]))
    def delete_or_restore_experiment(self, data, action):
        experiment_id = data.draw(st.sampled_from(sorted(self.ref.experiments)), label="experiment")
        experiment = self.ref.experiments[experiment_id]
        who = self.principal(data)
        then = OK if experiment.deleted == (action == "restore") else MISSING
        expected = checked(self.ref.experiment_level(who, experiment_id), MANAGE, then=then)
        self.act(who, "POST", f"{A}/experiments/{action}", {"experiment_id": experiment_id}, expected)
        if expected == OK:
            experiment.deleted = action == "delete"

    # --- registered models and prompts ------------------------------------------------------------
    @rule(data=st.data(), name=st.sampled_from(MODEL_NAMES), prompt=st.booleans())
    def create_model(self, data, name, prompt):
        self.create_model_as(self.admin_unless_plain(self.principal(data), name), name, prompt=prompt)

    def create_model_as(self, who: str, name: str, *, prompt: bool) -> None:
        body = {"name": name, "tags": [PROMPT_TAG] if prompt else []}
        if self.ref.model_named(name) is not None:
            self.act(who, "POST", f"{A}/registered-models/create", body, ALREADY_EXISTS)
            return
        self.act(who, "POST", f"{A}/registered-models/create", body, OK)
        serial = next(self.serials)
        self.ref.models[serial] = Model(name, prompt)
        if who != ADMIN:
            self.ref.grants[(self.ref.accounts[who].subject(who), ("model", serial))] = MANAGE

    @precondition(lambda self: self.ref.models)
    @rule(data=st.data(), action=st.sampled_from(["rename", "recreate", "delete"]), prompt=st.booleans())
    def change_model(self, data, action, prompt):
        """Rename a model, delete it, or delete it and create one of the same name at once (maybe as someone else).

        One rule for the three, so that each is drawn often enough in a short example.
        """
        serial = data.draw(st.sampled_from(sorted(self.ref.models)), label="model")
        name = self.ref.models[serial].name
        if action != "rename":
            self.delete_model_as(self.principal(data), name)
            if action == "recreate":
                self.create_model_as(self.admin_unless_plain(self.principal(data), name), name, prompt=prompt)
            return
        new_name = data.draw(st.sampled_from([n for n in MODEL_NAMES if n != name]), label="new name")
        who = self.admin_unless_plain(self.principal(data), new_name)
        then = ALREADY_EXISTS if self.ref.model_named(new_name) is not None else OK
        expected = checked(self.ref.model_level(who, serial), MANAGE, then=then)
        self.act(who, "POST", f"{A}/registered-models/rename", {"name": name, "new_name": new_name}, expected)
        if expected == OK:
            self.ref.models[serial].name = new_name

    def delete_model_as(self, who: str, name: str) -> None:
        serial = self.ref.model_named(name)
        expected = checked(self.ref.model_level(who, serial), MANAGE, then=MISSING if serial is None else OK)
        self.act(who, "DELETE", f"{A}/registered-models/delete", {"name": name}, expected)
        if expected == OK:
            del self.ref.models[serial]
            self.ref.forget_target(("model", serial))

    # --- traces ---------------------------------------------------------------------------------
    @precondition(lambda self: self.ref.experiments)
    @rule(data=st.data(), trace_id=st.sampled_from(TRACE_IDS))
    def log_trace(self, data, trace_id):
        # A live trace id is only sent again to its own experiment (a retry); see the docstring.
        experiment_id = self.ref.traces.get(trace_id) or data.draw(st.sampled_from(sorted(self.ref.experiments)),
                                                                   label="experiment")
        self.log_trace_as(self.principal(data), trace_id, experiment_id)

    def log_trace_as(self, who: str, trace_id: str, experiment_id: str) -> None:
        then = INVALID_STATE if self.ref.experiments[experiment_id].deleted else OK
        info = {"trace_id": trace_id, "state": "OK",
                "trace_location": {"type": "MLFLOW_EXPERIMENT",
                                   "mlflow_experiment": {"experiment_id": experiment_id}}}
        expected = checked(self.ref.experiment_level(who, experiment_id), EDIT, then=then)
        self.act(who, "POST", f"{A3}/traces", {"trace": {"trace_info": info}}, expected)
        if expected == OK:
            self.ref.traces[trace_id] = experiment_id

    @precondition(lambda self: self.ref.traces)
    @rule(data=st.data())
    def delete_trace(self, data):
        self.delete_trace_as(self.principal(data), data.draw(st.sampled_from(sorted(self.ref.traces)), label="trace"))

    @precondition(lambda self: self.ref.traces)
    @rule(data=st.data())
    def relog_trace(self, data):
        """Delete a trace and log its id again into any experiment, maybe as someone else (clients choose ids)."""
        trace_id = data.draw(st.sampled_from(sorted(self.ref.traces)), label="trace")
        self.delete_trace_as(self.principal(data), trace_id)
        if trace_id not in self.ref.traces:
            experiment_id = data.draw(st.sampled_from(sorted(self.ref.experiments)), label="experiment")
            self.log_trace_as(self.principal(data), trace_id, experiment_id)

    def delete_trace_as(self, who: str, trace_id: str) -> None:
        experiment_id = self.ref.traces[trace_id]
        expected = checked(self.ref.experiment_level(who, experiment_id), MANAGE)
        self.act(who, "POST", f"{A}/traces/delete-traces", {"experiment_id": experiment_id, "request_ids": [trace_id]},
                 expected)
        if expected == OK:
            del self.ref.traces[trace_id]

    # --- grants ---------------------------------------------------------------------------------
    def draw_target(self, data) -> tuple[str, str, Target]:
        """An experiment id or a model name (live or dead) and its reference target."""
        choices = [("experiment", i) for i in sorted(self.ref.experiments)] + [("model", n) for n in MODEL_NAMES]
        kind, key = data.draw(st.sampled_from(choices), label="target")
        return kind, key, ("experiment", key) if kind == "experiment" else ("model", self.ref.model_named(key))

    @rule(data=st.data(), grantee=st.sampled_from(ACCOUNT_NAMES), permission=st.sampled_from(sorted(LEVELS)),
          revoke=st.booleans())
    def grant_or_revoke_through_mlflow_api(self, data, grantee, permission, revoke):
        """MLflow 2.x permission APIs, as a resource's manager (or anyone trying) calls them."""
        kind, key, target = self.draw_target(data)
        who = self.principal(data)
        if kind == "experiment":
            level = self.ref.experiment_level(who, key)
            path, body = f"{A}/experiments/permissions", {"experiment_id": key, "username": grantee}
        else:
            level = self.ref.model_level(who, target[1])
            path, body = f"{A}/registered-models/permissions", {"name": key, "username": grantee}
        account = self.ref.accounts.get(grantee)
        grant = (account.subject(grantee), target) if account else None
        if revoke:
            expected = checked(level, MANAGE, then=OK if grant in self.ref.grants else MISSING)
            self.act(who, "POST", f"{path}/delete", body, expected)
            if expected == OK:
                del self.ref.grants[grant]
        else:
            # Even the administrator cannot grant on a missing model: a grant attaches to a resource, not a name.
            expected = checked(level, MANAGE, then=OK if account and target[1] is not None else MISSING)
            self.act(who, "POST", f"{path}/create", {**body, "permission": permission}, expected)
            if expected == OK:
                self.ref.grants[grant] = LEVELS[permission]

    @rule(data=st.data(), permission=st.sampled_from(["READ", "EDIT", "MANAGE"]), revoke=st.booleans())
    def grant_or_revoke_through_admin_api(self, data, permission, revoke):
        """mlgate's admin API: grants to accounts and the group, on one resource or on a name pattern."""
        subjects = [a.subject(n) for n, a in sorted(self.ref.accounts.items())]
        if self.ref.members is not None:
            subjects.append(f"group:{GROUP}")
        if not subjects:
            return
        subject = data.draw(st.sampled_from(subjects), label="subject")
        selectors = [(f"experiment:{i}", ("experiment", i)) for i in sorted(self.ref.experiments)]
        selectors += [(f"model:{m.name}", ("model", s)) for s, m in sorted(self.ref.models.items())]
        selectors += [(f"{EXPERIMENT_PATTERN[0]}:{EXPERIMENT_PATTERN[1]}", EXPERIMENT_PATTERN),
                      (f"{MODEL_PATTERN[0]}:{MODEL_PATTERN[1]}", MODEL_PATTERN)]
        selector, target = data.draw(st.sampled_from(selectors), label="resource")
        key = (subject, target)
        if revoke:
            expected = OK if key in self.ref.grants else MISSING
            self.act(ADMIN, "POST", f"{ADMIN_API}/grants/revoke", {"subject": subject, "resource": selector}, expected)
            self.ref.grants.pop(key, None)
        else:
            self.act(ADMIN, "POST", f"{ADMIN_API}/grants/put",
                     {"subject": subject, "resource": selector, "permission": permission}, OK)
            self.ref.grants[key] = LEVELS[permission]

    # --- a second workspace, its role, and same-named experiments and models in it --------------------
    @precondition(lambda self: self.ref.ws is None)
    @rule()
    def create_workspace(self):
        self.act(ADMIN, "POST", f"{A3}/workspaces", {"name": WS}, (201, None))
        self.ref.ws = WS

    @initialize(start_in_workspace=st.booleans())
    def maybe_start_in_workspace(self, start_in_workspace):
        """Half the examples start where a grant by name could leak into WS (see the module docstring): a
        leak then shows at the first check, instead of after the five steps that would build this world."""
        if not start_in_workspace:
            return
        self.create_workspace()
        self.create_or_delete_role("none")
        self.act(ADMIN, "POST", f"{A3}/roles/assign", {"username": "dana", "role_id": self.ref.ws_role}, OK)
        self.ref.ws_holders.add("dana")
        for selector, target in ((f"{EXPERIMENT_PATTERN[0]}:{EXPERIMENT_PATTERN[1]}", EXPERIMENT_PATTERN),
                                 (f"{MODEL_PATTERN[0]}:{MODEL_PATTERN[1]}", MODEL_PATTERN)):
            self.act(ADMIN, "POST", f"{ADMIN_API}/grants/put",
                     {"subject": "user:dana", "resource": selector, "permission": "READ"}, OK)
            self.ref.grants[("user:dana", target)] = READ
        created = self.act(ADMIN, "POST", f"{A}/experiments/create", {"name": "shared/e"}, OK, workspace=True)
        self.ref.ws_experiments[created.json()["experiment_id"]] = "shared/e"
        self.create_model_in_workspace_as(ADMIN, "shared-m", prompt=False)

    @precondition(lambda self: self.ref.ws is not None)
    @rule(data=st.data(), name=st.sampled_from(MODEL_NAMES), prompt=st.booleans())
    def create_model_in_workspace(self, data, name, prompt):
        """A model or prompt in WS, often named like one of 'default' (whose name must not stand in its way)."""
        self.create_model_in_workspace_as(self.principal(data), name, prompt=prompt)

    def ws_expected(self, who: str, then: tuple[int, str | None]) -> tuple[int, str | None]:
        """The answer to a create or rename into a name in WS (after any check on the model itself)."""
        if who != ADMIN and who not in self.ref.ws_holders:
            return MISSING  # not a member: the workspace does not exist for them
        return then if self.ref.ws_may_name(who) else DENIED

    def create_model_in_workspace_as(self, who: str, name: str, *, prompt: bool) -> None:
        ref = self.ref
        expected = self.ws_expected(who, ALREADY_EXISTS if ref.ws_model_named(name) is not None else OK)
        body = {"name": name, "tags": [PROMPT_TAG] if prompt else []}
        self.act(who, "POST", f"{A}/registered-models/create", body, expected, workspace=True)
        if expected == OK:
            serial = next(self.serials)
            ref.ws_models[serial] = Model(name, prompt)
            if who != ADMIN:
                ref.grants[(ref.accounts[who].subject(who), ("model", serial))] = MANAGE

    @precondition(lambda self: self.ref.ws_models)
    @rule(data=st.data(), action=st.sampled_from(["rename", "recreate", "delete"]), prompt=st.booleans())
    def change_model_in_workspace(self, data, action, prompt):
        """Rename, delete, or delete and re-create a model of WS, as anyone (members and not)."""
        ref = self.ref
        serial = data.draw(st.sampled_from(sorted(ref.ws_models)), label="WS model")
        name = ref.ws_models[serial].name
        who = self.principal(data)
        level = ref.ws_model_level(who, serial)
        if action == "rename":
            new_name = data.draw(st.sampled_from([n for n in MODEL_NAMES if n != name]), label="new name")
            then = ALREADY_EXISTS if ref.ws_model_named(new_name) is not None else OK
            expected = checked(level, MANAGE, then=then if ref.ws_may_name(who) else DENIED)
            self.act(who, "POST", f"{A}/registered-models/rename", {"name": name, "new_name": new_name}, expected,
                     workspace=True)
            if expected == OK:
                ref.ws_models[serial].name = new_name
            return
        expected = checked(level, MANAGE)
        self.act(who, "DELETE", f"{A}/registered-models/delete", {"name": name}, expected, workspace=True)
        if expected == OK:
            del ref.ws_models[serial]
            ref.forget_target(("model", serial))
            if action == "recreate":
                self.create_model_in_workspace_as(self.principal(data), name, prompt=prompt)

    @precondition(lambda self: self.ref.ws is not None)
    @rule(data=st.data(), name=st.sampled_from(MODEL_NAMES), grantee=st.sampled_from(ACCOUNT_NAMES),
          permission=st.sampled_from(["READ", "EDIT", "MANAGE"]))
    def grant_in_workspace(self, data, name, grantee, permission):
        """MLflow's permission API from WS: the name means WS's model, never 'default''s of the same name."""
        ref = self.ref
        who = self.principal(data)
        serial = ref.ws_model_named(name)
        account = ref.accounts.get(grantee)
        expected = checked(ref.ws_model_level(who, serial), MANAGE, then=OK if account else MISSING)
        self.act(who, "POST", f"{A}/registered-models/permissions/create",
                 {"name": name, "username": grantee, "permission": permission}, expected, workspace=True)
        if expected == OK:
            ref.grants[(account.subject(grantee), ("model", serial))] = LEVELS[permission]

    @precondition(lambda self: self.ref.ws is not None)
    @rule(level=st.sampled_from(["none", "READ", "EDIT"]))
    def create_or_delete_role(self, level):
        """The workspace's one role: delete it (its grants and holders go), or create it with an experiment
        "*" permission (or none: membership only)."""
        ref = self.ref
        if ref.ws_role is not None:
            self.act(ADMIN, "DELETE", f"{A3}/roles/delete", {"role_id": ref.ws_role}, OK)
            ref.ws_role, ref.ws_permission, ref.ws_model_permission, ref.ws_role_level = None, None, None, NONE
            ref.ws_holders.clear()
            return
        role = self.act(ADMIN, "POST", f"{A3}/roles/create", {"workspace": WS, "name": "members"}, OK)
        ref.ws_role = role.json()["role"]["id"]
        if level != "none":
            self.set_role_permission(level)

    @precondition(lambda self: self.ref.ws_role is not None)
    @rule(level=st.sampled_from(["READ", "EDIT"]))
    def set_role_permission(self, level):
        ref = self.ref
        if ref.ws_permission is None:
            ids = []
            for resource_type in ("experiment", "registered_model"):
                added = self.act(ADMIN, "POST", f"{A3}/roles/permissions/add", {
                    "role_id": ref.ws_role, "resource_type": resource_type, "resource_pattern": "*",
                    "permission": level}, OK)
                ids.append(added.json()["role_permission"]["id"])
            ref.ws_permission, ref.ws_model_permission = ids
        else:
            for permission_id in (ref.ws_permission, ref.ws_model_permission):
                self.act(ADMIN, "PATCH", f"{A3}/roles/permissions/update",
                         {"role_permission_id": permission_id, "permission": level}, OK)
        ref.ws_role_level = LEVELS[level]

    @precondition(lambda self: self.ref.ws_role is not None and self.ref.accounts)
    @rule(data=st.data())
    def assign_or_unassign_role(self, data):
        name = data.draw(st.sampled_from(sorted(self.ref.accounts)), label="holder")
        body = {"username": name, "role_id": self.ref.ws_role}
        if name in self.ref.ws_holders:
            self.act(ADMIN, "DELETE", f"{A3}/roles/unassign", body, OK)
            self.ref.ws_holders.discard(name)
        else:
            self.act(ADMIN, "POST", f"{A3}/roles/assign", body, OK)
            self.ref.ws_holders.add(name)

    @precondition(lambda self: self.ref.ws is not None)
    @rule(data=st.data(), name=st.sampled_from(EXPERIMENT_NAMES))
    def create_experiment_in_workspace(self, data, name):
        """An experiment in WS, often named like one of 'default' (a member switches workspace to make it)."""
        who = self.principal(data)
        ref = self.ref
        if who != ADMIN and who not in ref.ws_holders:
            expected = MISSING  # not a member: the workspace does not exist for them
        elif not ref.ws_may_name(who):
            expected = DENIED  # the role's READ "*" claims every name there; creating needs EDIT under it
        elif name in ref.ws_experiments.values():
            expected = ALREADY_EXISTS
        else:
            expected = OK
        response = self.act(who, "POST", f"{A}/experiments/create", {"name": name}, expected, workspace=True)
        if expected == OK:
            experiment_id = response.json()["experiment_id"]
            ref.ws_experiments[experiment_id] = name
            if who != ADMIN:
                ref.grants[(ref.accounts[who].subject(who), ("experiment", experiment_id))] = MANAGE

    def workspace_problems(self, who: str) -> list[tuple[str, str]]:
        """From WS: exactly what the reference says; from 'default': none of WS's experiments, for anyone."""
        ref, problems = self.ref, []
        for experiment_id in sorted(ref.ws_experiments):
            got = outcome(self.call(who, "GET", f"{A}/experiments/get", {"experiment_id": experiment_id}))
            if got != MISSING:
                problems.append((f"{A}/experiments/", f"{who} got WS experiment {experiment_id} from 'default': {got}"))
        for name in sorted({m.name for m in ref.ws_models.values()} - {m.name for m in ref.models.values()}):
            got = outcome(self.call(who, "GET", f"{A}/registered-models/get", {"name": name}))
            if got != MISSING:
                problems.append((f"{A}/registered-models/", f"{who} got WS model {name!r} from 'default': {got}"))
        if ref.ws is None:
            return problems
        found = self.call(who, "POST", f"{A}/experiments/search", {"view_type": "ALL", "max_results": 1000},
                          workspace=True)
        if who != ADMIN and who not in ref.ws_holders:
            if outcome(found) != MISSING:
                problems.append((f"{A}/experiments/", f"{who}, not a member, searched WS: {outcome(found)}"))
            return problems
        wanted = {i for i in ref.ws_experiments if ref.ws_level(who, i) >= READ}
        got = {e["experiment_id"] for e in found.json().get("experiments", [])}
        if got != wanted:
            problems.append((f"{A}/experiments/", f"{who} searched WS: expected {sorted(wanted)}, got {sorted(got)}"))
        for experiment_id, name in sorted(ref.ws_experiments.items()):
            level = ref.ws_level(who, experiment_id)
            for what, method, path, body, expected in (
                    ("get", "GET", f"{A}/experiments/get", {"experiment_id": experiment_id}, checked(level, READ)),
                    ("get by name", "GET", f"{A}/experiments/get-by-name", {"experiment_name": name},
                     checked(level, READ)),
                    ("tag", "POST", f"{A}/experiments/set-experiment-tag",
                     {"experiment_id": experiment_id, "key": "k", "value": who}, checked(level, EDIT))):
                response = self.call(who, method, path, body, workspace=True)
                if outcome(response) != expected:
                    problems.append((f"{A}/experiments/", f"{who} {what} WS experiment {experiment_id} ({name}): "
                                                          f"expected {expected}, got {outcome(response)}"))
                elif expected == OK and what == "get by name" and \
                        response.json()["experiment"]["experiment_id"] != experiment_id:
                    problems.append((f"{A}/experiments/", f"{who} get-by-name {name!r} in WS found another one"))
        return problems + self.workspace_model_problems(who)

    def workspace_model_problems(self, who: str) -> list[tuple[str, str]]:
        """From WS, a member (or the administrator) finds WS's models and prompts as the reference says, by
        the names 'default''s models also use: searches list exactly the readable ones, a get or tag by name
        answers for WS's model of that name (hidden == missing), never for 'default''s."""
        ref, problems = self.ref, []
        path = f"{A}/registered-models/"
        for prompts, params in ((False, {"max_results": 1000}),
                                (True, {"max_results": 1000, "filter": PROMPT_FILTER})):
            wanted = {m.name for s, m in ref.ws_models.items()
                      if m.prompt == prompts and ref.ws_model_level(who, s) >= READ}
            found = self.call(who, "GET", f"{A}/registered-models/search", params, workspace=True)
            got = {m["name"] for m in found.json().get("registered_models", [])} if found.status_code == 200 \
                else outcome(found)
            if got != wanted:
                problems.append((path, f"{who} searched WS {'prompts' if prompts else 'models'}: expected "
                                       f"{sorted(wanted)}, got {got}"))
        for name in MODEL_NAMES:
            serial = ref.ws_model_named(name)
            level = ref.ws_model_level(who, serial)
            requests = [("get", "GET", f"{A}/registered-models/get", {"name": name}, checked(level, READ))]
            if serial is not None:
                requests.append(("tag", "POST", f"{A}/registered-models/set-tag",
                                 {"name": name, "key": "k", "value": who}, checked(level, EDIT)))
            for what, method, request_path, body, expected in requests:
                got = outcome(self.call(who, method, request_path, body, workspace=True))
                if got != expected:
                    problems.append((path, f"{who} {what} WS model {name!r}: expected {expected}, got {got}"))
        return problems

    # --- the comparison -------------------------------------------------------------------------
    def answers(self, who: str, requests: list[tuple[str, str, str, dict | None, tuple]]) -> list[tuple[str, str]]:
        """Make each request as ``who``; the mismatches with the expected (status, error code) or body."""
        problems = []
        for what, method, path, body, expected in requests:
            response = self.call(who, method, path, body)
            got = outcome(response)
            if got != expected[:2]:
                problems.append((path, f"{who} {what}: expected {expected[:2]}, got {got}: {response.text[:200]}"))
            elif got == OK and len(expected) > 2 and not expected[2](response.json()):
                problems.append((path, f"{who} {what}: wrong body {response.text[:300]}"))
        return problems

    def searches(self, who: str) -> list[tuple[str, str]]:
        """Every search answers exactly what ``who`` may read, no more and no less."""
        ref, problems = self.ref, []
        experiments = {i for i in ref.experiments if ref.experiment_level(who, i) >= READ}
        models = {m.name for s, m in ref.models.items() if ref.model_level(who, s) >= READ and not m.prompt}
        prompts = {m.name for s, m in ref.models.items() if ref.model_level(who, s) >= READ and m.prompt}
        traces = {t for t, e in ref.traces.items() if e in experiments}
        # A search over a kind of which nothing exists (the administrator's searches say so) is left out.
        if ref.experiments or who == ADMIN:
            found = self.call(who, "POST", f"{A}/experiments/search", {"view_type": "ALL", "max_results": 1000}).json()
            got = {e["experiment_id"] for e in found.get("experiments", [])} - {"0"}  # the Default experiment
            if got != experiments:
                problems.append((f"{A}/experiments/search",
                                 f"{who} experiments/search: expected {sorted(experiments)}, got {sorted(got)}"))
        for wanted, params, what in ((models, {"max_results": 1000}, "models"),
                                     (prompts, {"max_results": 1000, "filter": PROMPT_FILTER}, "prompts")):
            if who != ADMIN and not any(m.prompt == (what == "prompts") for m in ref.models.values()):
                continue
            found = self.call(who, "GET", f"{A}/registered-models/search", params).json()
            got = {m["name"] for m in found.get("registered_models", [])}
            if got != wanted:
                problems.append((f"{A}/registered-models/search", f"{who} registered-models/search ({what}): "
                                 f"expected {sorted(wanted)}, got {sorted(got)}"))
        if ref.experiments and (ref.traces or who == ADMIN):
            found = self.call(who, "POST", f"{A3}/traces/search",
                              {"experiment_ids": sorted(ref.experiments), "max_results": 500}).json()
            got = {t["trace_id"] for t in found.get("traces", [])}
            if got != traces:
                problems.append((f"{A3}/traces/search",
                                 f"{who} traces/search: expected {sorted(traces)}, got {sorted(got)}"))
        return problems

    def point_requests(self, who: str) -> list[tuple]:
        """A get on every experiment id, model name and trace id, live or dead, and one write on each live one.

        A write to something missing must answer as the get does (404); the write that tells more is the one
        on a resource that exists, hidden (404), readable only (403) or writable.
        """
        ref, requests = self.ref, []
        for experiment_id, experiment in sorted(ref.experiments.items()):
            level = ref.experiment_level(who, experiment_id)
            stage = "deleted" if experiment.deleted else "active"
            requests.append((f"get experiment {experiment_id}", "GET", f"{A}/experiments/get",
                             {"experiment_id": experiment_id},
                             (*checked(level, READ), lambda body, shown=(experiment.name, stage):
                              (body["experiment"]["name"], body["experiment"]["lifecycle_stage"]) == shown)))
            requests.append((f"tag experiment {experiment_id}", "POST", f"{A}/experiments/set-experiment-tag",
                             {"experiment_id": experiment_id, "key": "k", "value": who},
                             checked(level, EDIT, then=NOT_ACTIVE if experiment.deleted else OK)))
        for name in MODEL_NAMES:
            serial = ref.model_named(name)
            level = ref.model_level(who, serial)
            requests.append((f"get model {name}", "GET", f"{A}/registered-models/get", {"name": name},
                             checked(level, READ)))
            if serial is not None:
                requests.append((f"tag model {name}", "POST", f"{A}/registered-models/set-tag",
                                 {"name": name, "key": "k", "value": who}, checked(level, EDIT)))
        for trace_id in TRACE_IDS:
            experiment_id = ref.traces.get(trace_id)
            level = NONE if experiment_id is None else ref.experiment_level(who, experiment_id)
            requests.append((f"get trace {trace_id}", "GET", f"{A3}/traces/{trace_id}", None,
                             (*checked(level, READ), lambda body, i=experiment_id: body["trace"]["trace_info"][
                                 "trace_location"]["mlflow_experiment"]["experiment_id"] == i)))
            if experiment_id is not None:
                requests.append((f"tag trace {trace_id}", "PATCH", f"{A3}/traces/{trace_id}/tags",
                                 {"key": "k", "value": who}, checked(level, EDIT)))
        return requests

    @invariant()
    def everyone_sees_what_the_model_says(self):
        if not self.changed:
            return
        self.changed = False
        problems = self.searches(ADMIN)  # the administrator's searches check the model of what exists
        problems += self.workspace_problems(ADMIN)
        for who in sorted(self.ref.accounts):
            problems += self.searches(who) + self.answers(who, self.point_requests(who))
            problems += self.workspace_problems(who)
        for headers in self.ref.dead_credentials:
            response = self.call(ADMIN, "GET", f"{A}/users/current", headers=headers)
            if outcome(response) != UNAUTHENTICATED:
                problems.append((f"{A}/users/current", f"a deleted account's credential answered "
                                                       f"{outcome(response)}: {response.text[:200]}"))
        if problems:
            raise mismatch(problems[0][0], "\n".join(text for _, text in problems))


def _basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode()


# A failure is shrunk (up to hypothesis' five minutes) before its minimal example is printed: give it the time.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("backend", BACKENDS)
def test_authorization_holds_through_renames_deletes_and_recreations(backend, tmp_path):
    machine = type("AuthorizationLifecycleOn" + backend.capitalize(), (AuthorizationLifecycle,),
                   {"backend": backend, "workdir": tmp_path})
    run_state_machine_as_test(machine, settings=LIFECYCLE)
