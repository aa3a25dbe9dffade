"""The policy file's ``workspaces:`` and ``workspace_templates:`` sections: every problem, each with its key path."""

from __future__ import annotations

import textwrap

import pytest

from policies.file import PolicyFileError, load_policy_text
from policies.file.workspaces import expand_workspaces
from policies.testing import CaseFileError, load_case_file, run_case_file


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyFileError) as caught:
        load_policy_text(textwrap.dedent(text))
    return caught.value.problems


def test_every_problem_is_listed_at_once_with_its_key_path():
    assert problems("""\
        workspaces:
          team-a:
            roles:
              members:
                permissions:
                  - {resource_type: workspace, resource_pattern: "x", permission: MANAGE}
                  - {resource_type: run, permission: READ}
                  - {resource_type: experiment, permission: DENY}
                  - {resource_type: experiment, permission: WRITE}
                  - {resource_type: workspace, permission: EDIT}
                members: ["group:role@3", "team:x"]
          Team_B: {}
          api:
          x: {}
          team-c: {colour: blue}
        workspace_templates:
          - {roles: {}}
    """) == [
        "workspaces.team-a.roles.members.permissions[0]: A workspace permission accepts only the resource_pattern '*'.",
        "workspaces.team-a.roles.members.permissions[1]: Invalid resource_type 'run'. Supported: experiment, "
        "registered_model, prompt, workspace.",
        "workspaces.team-a.roles.members.permissions[2]: DENY role permissions are not supported by mlgate yet; "
        "remove the allowing permission.",
        "workspaces.team-a.roles.members.permissions[3]: Invalid permission 'WRITE'. Use READ, USE, EDIT or MANAGE.",
        "workspaces.team-a.roles.members.permissions[4]: A workspace permission is USE or MANAGE.",
        "workspaces.team-a.roles.members.members[0]: 'group:role@3': a role cannot be assigned to another role's "
        "group",
        "workspaces.team-a.roles.members.members[1]: 'team:x' is not 'user:<name>', 'group:<name>' or "
        "'service:<name>'",
        "workspaces.Team_B (key): Workspace name 'Team_B' must match the pattern [a-z0-9]([-a-z0-9]*[a-z0-9])? "
        "(lowercase alphanumeric with optional internal hyphens).",
        "workspaces.api (key): Workspace name 'api' is reserved.",
        "workspaces.x (key): Workspace name 'x' must be between 2 and 63 characters.",
        "workspaces.team-c.colour: is not a known key",
        "workspace_templates[0].group: is required",
    ]


def test_repeated_entries_are_problems():
    assert problems("""\
        workspaces:
          team-a:
            roles:
              members:
                permissions:
                  - {resource_type: experiment, permission: EDIT}
                  - {resource_type: experiment, resource_pattern: "*", permission: READ}
                members: [alice, "user:alice"]
        workspace_templates:
          - {group: "team-*"}
          - {group: "team-*"}
    """) == [
        "workspaces.team-a.roles.members.permissions[1]: repeats resource_type experiment and resource_pattern * "
        "of permissions[0]",
        "workspaces.team-a.roles.members.members[1]: user:alice is listed twice",
        "workspace_templates[1].group: repeats team-* of workspace_templates[0]",
    ]


def test_a_valid_section_and_its_defaults():
    policy = load_policy_text(textwrap.dedent("""\
        workspaces:
          default:
          team-a: {description: Team A}
          team-b:
            roles:
              members: {permissions: [{resource_type: prompt, permission: USE}], members: [bob, "service:ci"]}
    """))
    assert policy.workspaces["default"].roles is None  # roles left out: the stored ones are kept
    assert policy.workspaces["team-a"].description == "Team A"
    assert policy.workspaces["team-b"].roles["members"].members == ["user:bob", "service:ci"]
    assert load_policy_text("version: 1\n").workspaces is None  # no section: apply leaves workspaces alone


def test_templates_give_matching_groups_a_workspace_and_declarations_win():
    policy = load_policy_text(textwrap.dedent("""\
        workspaces:
          team-a: {description: declared}
        workspace_templates:
          - group: "team-*"
            description: "the {group} team"
            roles:
              members:
                permissions: [{resource_type: experiment, resource_pattern: "{group}/*", permission: EDIT}]
                members: ["group:{group}"]
    """))
    groups = {"team-a", "team-b", "team-C", "team-", "default", "others"}
    made = expand_workspaces(policy.workspaces, policy.workspace_templates, groups)
    # team-C and team- cannot be workspace names: no workspace, nothing opened.
    assert sorted(made) == ["team-a", "team-b"]
    assert made["team-a"].description == "declared"
    assert made["team-b"].description == "the team-b team"
    role = made["team-b"].roles["members"]
    assert role.members == ["group:team-b"]
    assert role.permissions[0].resource_pattern == "team-b/*"


def test_a_case_naming_an_unknown_workspace_is_an_error_not_everything(tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text(textwrap.dedent("""\
        policy:
          access: {default_permission: READ}
          workspaces: {team-a: {}}
          workspace_templates: [{group: "proj-*"}]
        cases:
          - {name: known, workspace: team-a, principal: user:a, action: READ, experiment: {id: "1", name: x},
             expect: deny}
          - {name: unknown, workspace: team-z, principal: user:a, action: READ, experiment: {id: "1", name: x},
             expect: allow}
          - {name: template, workspace: proj-q, principal: user:a, action: READ, experiment: {id: "1", name: x},
             expect: deny}
          - {name: invalid, workspace: Proj_Q, principal: user:a, action: READ, experiment: {id: "1", name: x},
             expect: deny}
    """))
    with pytest.raises(CaseFileError) as caught:
        load_case_file(path)
    assert caught.value.problems == [
        "cases[1].workspace: workspace 'team-z' is not declared in the policy's workspaces and no "
        "workspace_templates entry makes it",
        "cases[3].workspace: workspace 'Proj_Q' is not declared in the policy's workspaces and no "
        "workspace_templates entry makes it",
    ]


def test_a_workspace_with_no_role_for_the_principal_denies_even_with_a_permissive_default(tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text(textwrap.dedent("""\
        policy:
          access: {default_permission: READ}
          workspaces: {team-a: {roles: {}}}
        cases:
          - {name: outsider, workspace: team-a, principal: user:a, action: READ, experiment: {id: "1", name: x},
             expect: deny, rule: workspace-membership}
          - {name: default, principal: user:a, action: READ, experiment: {id: "1", name: x}, expect: allow,
             rule: default_permission}
    """))
    results = run_case_file(path)
    assert [r.passed for r in results] == [True, True], [r.message for r in results]
    assert results[0].decision.reason == "user:a is not a member of workspace 'team-a'"
