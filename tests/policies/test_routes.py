"""The route table maps every canonical operation id, and the cross-resource rules are in it."""

from __future__ import annotations

import pytest

from policies.model import Permission, ResourceKind
from policies.routes import OPERATION_IDS, ROUTE_TABLE, Access, Lookup, Source, requirement_for

# The canonical operation ids every engineer mounts routes under (see the project's preamble).
CANONICAL = """
ops.health ops.ready ops.metrics ops.version server.info server.openapi
experiments.create experiments.get experiments.get_by_name experiments.update experiments.delete
experiments.restore experiments.set_tag experiments.delete_tag experiments.search experiments.search_via_get
runs.create runs.get runs.update runs.delete runs.restore runs.set_tag runs.delete_tag runs.log_metric
runs.log_param runs.log_batch runs.log_inputs runs.log_outputs runs.search runs.search_via_get metrics.get_history
metrics.get_history_bulk_interval
artifacts.list artifacts.get artifacts.put artifacts.delete artifacts.mpu_create artifacts.mpu_complete
artifacts.mpu_abort artifacts.list_for_run artifacts.get_for_run model_versions.get_artifact
registered_models.create registered_models.get registered_models.rename registered_models.update
registered_models.delete registered_models.search registered_models.search_via_post registered_models.set_tag
registered_models.delete_tag registered_models.get_latest_versions_via_get
registered_models.get_latest_versions registered_models.set_alias registered_models.delete_alias
registered_models.get_version_by_alias
model_versions.create model_versions.get model_versions.update model_versions.delete model_versions.search
model_versions.search_via_post
model_versions.set_tag model_versions.delete_tag model_versions.transition_stage model_versions.get_download_uri
logged_models.create logged_models.get logged_models.finalize logged_models.delete logged_models.search
logged_models.set_tags logged_models.delete_tag logged_models.log_params logged_models.list_artifacts
logged_models.get_artifact
traces.start traces.get_info traces.get traces.batch_get traces.search traces.set_tag traces.delete_tag
traces.delete traces.link_to_run assessments.create assessments.get assessments.update assessments.delete otlp.ingest
users.create users.get users.update_password users.update_admin users.delete users.current
tokens.create tokens.list tokens.revoke auth.login_page auth.login auth.logout
auth.sso_login auth.sso_callback auth.sso_logout_page auth.sso_logout
users.list users.update_disabled
permissions.experiments.create permissions.experiments.get permissions.experiments.update
permissions.experiments.delete permissions.registered_models.create permissions.registered_models.get
permissions.registered_models.update permissions.registered_models.delete
permissions.experiments.update_via_post permissions.experiments.delete_via_post
permissions.registered_models.update_via_post permissions.registered_models.delete_via_post
permissions.users.grant permissions.users.revoke permissions.users.get permissions.users.list
admin.users.list admin.users.get admin.groups.list admin.groups.create admin.groups.delete
admin.groups.add_member admin.groups.remove_member admin.grants.list admin.grants.put admin.grants.revoke
admin.perms.explain admin.audit.list admin.audit.verify admin.audit.checkpoints admin.audit.checkpoint
admin.audit.prune admin.policy.export admin.policy.apply
ui.static ui.experiments ui.experiment ui.run
ui.artifact_preview ui.artifact_image ui.compare ui.traces ui.trace ui.models ui.prompts ui.model ui.logged_model
ui.account ui.account.token_create ui.account.token_revoke ui.account.password
ui.admin.users ui.admin.user_create ui.admin.user_update ui.admin.groups ui.admin.group_create
ui.admin.group_delete ui.admin.group_member ui.admin.grants ui.admin.grant_put ui.admin.grant_revoke
ui.admin.audit ui.admin.policy
workspaces.list workspaces.get workspaces.create workspaces.update workspaces.delete
roles.create roles.get roles.list roles.update roles.delete roles.permissions.add roles.permissions.remove
roles.permissions.update roles.permissions.list roles.assign roles.unassign roles.users.list roles.users.roles
ui.experiments_list mlflow_ui.index mlflow_ui.static graphql.query
datasets.search_summaries evaluation_datasets.search traces.metrics traces.get_artifact traces.get_artifact_v3
permissions.users.current features.assistant_config features.assistant_providers features.ui_telemetry_config
features.ui_telemetry_records features.gateway_proxy features.gateway_proxy_via_post
scim.service_provider_config scim.resource_types.list scim.resource_types.get scim.schemas.list scim.schemas.get
scim.users.list scim.users.create scim.users.get scim.users.replace scim.users.patch scim.users.delete
scim.groups.list scim.groups.create scim.groups.get scim.groups.replace scim.groups.patch scim.groups.delete
skills.not_served.get skills.not_served.get_path skills.not_served.post skills.not_served.post_path
skills.not_served.patch skills.not_served.patch_path skills.not_served.delete skills.not_served.delete_path
ui.account.workspace ui.artifact_download ui.workspace_admin.list ui.workspace_admin.page ui.workspace_admin.role_create
ui.workspace_admin.role_delete ui.workspace_admin.permission_add ui.workspace_admin.permission_remove
ui.workspace_admin.assign ui.workspace_admin.unassign
""".split()


def test_every_canonical_operation_is_mapped_and_nothing_else():
    assert len(CANONICAL) == len(set(CANONICAL))
    assert set(OPERATION_IDS) == set(CANONICAL)
    assert list(OPERATION_IDS) == sorted(OPERATION_IDS)


def test_scim_operations_take_the_provisioning_token_and_decide_refuses_every_principal():
    from policies.compiled import compile_policy
    from policies.decide import decide
    from policies.file import PolicyFile
    from policies.model import Subject

    scim = [op for op in OPERATION_IDS if op.startswith("scim.")]
    assert len(scim) == 17
    assert {requirement_for(op).access for op in scim} == {Access.SCIM}
    admin = Subject(kind="user", name="root", groups=frozenset(), is_admin=True)
    # An administrator's credentials never provision: the gateway checks the token, decide() refuses everyone.
    assert decide(compile_policy(PolicyFile()), admin, requirement_for("scim.users.create")).allowed is False


def test_unknown_operations_are_unmapped():
    assert requirement_for("runs.get") is ROUTE_TABLE["runs.get"]
    for op in ("runs.nuke", "", "RUNS.GET", "runs.get "):
        assert requirement_for(op) is None


def test_table_is_read_only():
    with pytest.raises(TypeError):
        ROUTE_TABLE["runs.nuke"] = ROUTE_TABLE["ops.health"]  # type: ignore[index]


def test_exactly_the_login_and_liveness_operations_are_public():
    public = {op for op, req in ROUTE_TABLE.items() if req.access is Access.PUBLIC}
    # Logout is public: its handler checks the session cookie and the form's CSRF field itself.
    assert public == {"ops.health", "ops.ready", "ops.version", "server.info", "auth.login_page", "auth.login",
                      "auth.logout",
                      "auth.sso_login", "auth.sso_callback", "auth.sso_logout_page", "auth.sso_logout",
                      "ui.static",  # the UI's stylesheet: the login page needs it before anyone signs in
                      "mlflow_ui.static"}  # MLflow's UI bundle: public code, its page itself needs a sign-in


def test_admin_only_and_self_service_account_operations():
    assert {op for op, r in ROUTE_TABLE.items() if r.access is Access.ADMIN} == {
        "users.create", "users.update_admin", "users.delete", "users.list", "users.update_disabled",
        "ops.metrics", "workspaces.create", "workspaces.update", "workspaces.delete",
        *(op for op in OPERATION_IDS if op.startswith(("admin.", "ui.admin.")))}
    # Every admin-API change is a write a read-only admin token must not make (verify only reads the audit log;
    # checkpoints lists the stored ones, while checkpoint signs one and prune deletes: both MANAGE).
    assert all(ROUTE_TABLE[op].permission is Permission.MANAGE for op in OPERATION_IDS
               if op.startswith("admin.") and op.rsplit(".", 1)[1] not in ("list", "get", "explain", "export",
                                                                          "verify", "checkpoints"))
    assert ROUTE_TABLE["admin.audit.checkpoints"].permission is Permission.READ
    # The admin pages: viewing is READ, every form that changes something is MANAGE.
    ui_admin_views = {"ui.admin.users", "ui.admin.groups", "ui.admin.grants", "ui.admin.audit", "ui.admin.policy"}
    assert all(ROUTE_TABLE[op].permission is (Permission.READ if op in ui_admin_views else Permission.MANAGE)
               for op in OPERATION_IDS if op.startswith("ui.admin."))
    assert {op for op, r in ROUTE_TABLE.items() if r.access is Access.SELF_OR_ADMIN} == {
        "users.get", "users.update_password"}
    # A read-only token may look at its account but not mint or revoke tokens.
    assert ROUTE_TABLE["tokens.create"].permission is Permission.MANAGE
    assert ROUTE_TABLE["tokens.revoke"].permission is Permission.MANAGE
    assert ROUTE_TABLE["tokens.list"].permission is Permission.READ


def test_searches_are_scoped_by_the_right_kind():
    searches = {op: r.resource_kind for op, r in ROUTE_TABLE.items() if r.access is Access.SEARCH}
    assert searches == {
        "experiments.search": ResourceKind.EXPERIMENT, "runs.search": ResourceKind.EXPERIMENT,
        "experiments.search_via_get": ResourceKind.EXPERIMENT, "runs.search_via_get": ResourceKind.EXPERIMENT,
        "logged_models.search": ResourceKind.EXPERIMENT, "traces.search": ResourceKind.EXPERIMENT,
        "ui.experiments": ResourceKind.EXPERIMENT, "ui.account": ResourceKind.EXPERIMENT,
        "ui.experiments_list": ResourceKind.EXPERIMENT,
        # MLflow's UI's GraphQL queries: the scope, and a check of every object against it (tracking/graphql)
        "graphql.query": ResourceKind.EXPERIMENT, "evaluation_datasets.search": ResourceKind.EXPERIMENT,
        "ui.models": ResourceKind.REGISTERED_MODEL, "ui.prompts": ResourceKind.REGISTERED_MODEL,
        "registered_models.search": ResourceKind.REGISTERED_MODEL,
        "registered_models.search_via_post": ResourceKind.REGISTERED_MODEL,
        "model_versions.search": ResourceKind.REGISTERED_MODEL,
        "model_versions.search_via_post": ResourceKind.REGISTERED_MODEL,
    }


def test_every_resource_check_says_where_its_resource_is():
    for op, requirement in ROUTE_TABLE.items():
        for check in requirement.checks():
            if check.access in (Access.RESOURCE, Access.SELF_OR_ADMIN, Access.CREATE_EXPERIMENT,
                                Access.CREATE_MODEL):
                assert check.locator is not None, op
                assert check.locator.fields, op
                assert check.permission >= Permission.READ, op
            else:
                assert check.locator is None, op


@pytest.mark.parametrize(("op", "permission"), [
    ("experiments.get", Permission.READ), ("experiments.set_tag", Permission.EDIT),
    ("experiments.delete", Permission.MANAGE), ("experiments.restore", Permission.MANAGE),
    ("experiments.update", Permission.MANAGE), ("runs.create", Permission.EDIT), ("runs.get", Permission.READ),
    ("runs.log_batch", Permission.EDIT), ("runs.delete", Permission.MANAGE), ("artifacts.get", Permission.READ),
    ("artifacts.put", Permission.EDIT), ("artifacts.delete", Permission.MANAGE),
    ("registered_models.update", Permission.EDIT), ("registered_models.delete", Permission.MANAGE),
    ("registered_models.delete_alias", Permission.MANAGE), ("model_versions.delete", Permission.MANAGE),
    ("logged_models.delete", Permission.MANAGE), ("traces.delete", Permission.MANAGE),
    ("otlp.ingest", Permission.EDIT),
])
def test_levels_follow_mlflow_meanings(op, permission):
    assert ROUTE_TABLE[op].permission is permission


def test_runs_are_found_by_run_id_then_run_uuid():
    locator = ROUTE_TABLE["runs.get"].locator
    assert (locator.source, locator.fields, locator.lookup) == (Source.ARGS, ("run_id", "run_uuid"), Lookup.RUN)
    assert ROUTE_TABLE["metrics.get_history_bulk_interval"].locator.many is True


def test_compare_page_names_at_most_ten_runs():
    locator = ROUTE_TABLE["ui.compare"].locator
    assert (locator.fields, locator.lookup, locator.many, locator.max_values) == (("runs",), Lookup.RUN, True, 10)
    assert ROUTE_TABLE["metrics.get_history_bulk_interval"].locator.max_values is None  # locate's general cap


def test_model_version_create_needs_edit_on_the_model_and_read_on_its_sources():
    requirement = ROUTE_TABLE["model_versions.create"]
    assert (requirement.permission, requirement.resource_kind, requirement.locator.fields) == (
        Permission.EDIT, ResourceKind.REGISTERED_MODEL, ("name",))
    sources = {(c.locator.fields, c.locator.lookup, c.permission, c.locator.required) for c in requirement.also}
    assert sources == {
        (("run_id",), Lookup.RUN, Permission.READ, False),
        (("model_id",), Lookup.LOGGED_MODEL, Permission.READ, False),
        (("source",), Lookup.SOURCE_URI, Permission.READ, False),
    }


def test_logging_for_a_logged_model_needs_edit_on_its_experiment():
    metric = ROUTE_TABLE["runs.log_metric"]
    assert metric.locator.lookup is Lookup.RUN
    (extra,) = metric.also
    assert (extra.permission, extra.locator.fields, extra.locator.lookup) == (
        Permission.EDIT, ("model_id",), Lookup.LOGGED_MODEL)
    (batch,) = ROUTE_TABLE["runs.log_batch"].also
    assert (batch.locator.fields, batch.locator.many) == (("metrics[].model_id",), True)
    for op in ("runs.log_inputs", "runs.log_outputs"):
        (extra,) = ROUTE_TABLE[op].also
        assert (extra.permission, extra.locator.fields) == (Permission.EDIT, ("models[].model_id",))


def test_renames_must_also_pass_the_create_rules_for_the_new_name():
    for op, access in (("experiments.update", Access.CREATE_EXPERIMENT),
                       ("registered_models.rename", Access.CREATE_MODEL)):
        (extra,) = ROUTE_TABLE[op].also
        assert (extra.access, extra.locator.fields, extra.locator.lookup) == (access, ("new_name",), Lookup.NEW_NAME)


def test_artifact_paths_and_traces_are_located():
    assert ROUTE_TABLE["artifacts.put"].locator.lookup is Lookup.ARTIFACT_PATH
    assert ROUTE_TABLE["artifacts.list"].locator.source is Source.ARGS
    assert ROUTE_TABLE["traces.set_tag"].locator.fields == ("trace_id", "request_id")
    assert ROUTE_TABLE["otlp.ingest"].locator.source is Source.HEADER
    assert ROUTE_TABLE["traces.start"].locator.fields == (
        "trace.trace_info.trace_location.mlflow_experiment.experiment_id",)
    (body,) = ROUTE_TABLE["assessments.create"].also
    assert body.locator.fields == ("assessment.trace_id",)
