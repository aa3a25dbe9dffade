"""policies imports only what it is allowed to: an allow-list (the import-linter contract is a deny-list, so a
new web or database library would slip past it; this test does not let one)."""

import sys

import grimp

# Besides the standard library: pydantic (the policy file's schema) and yaml (reading it).
ALLOWED = {"pydantic", "pydantic_core", "yaml"}


def test_policies_imports_only_the_standard_library_pydantic_and_yaml():
    graph = grimp.build_graph("policies", include_external_packages=True)
    imported = {
        target.split(".")[0]
        for module in graph.modules if module == "policies" or module.startswith("policies.")
        for target in graph.find_modules_directly_imported_by(module)
    }
    foreign = sorted(name for name in imported
                     if name != "policies" and name not in sys.stdlib_module_names and name not in ALLOWED)
    assert foreign == [], f"policies imports {foreign}; only the standard library, pydantic and yaml are allowed"
