"""pytest 9.2 compatibility for schemathesis' pytest integration (test_api_fuzz.py)."""

from __future__ import annotations

from _pytest.nodes import Node

try:
    # pytest 9.2 keeps a node's id as a structured NodeId in ``_id``; schemathesis 4.32 still renames each
    # operation's subtest through the former ``_nodeid`` string ("'Function' object has no attribute '_nodeid'").
    from _pytest.nodeid import coerce_node_id
except ImportError:  # pytest < 9.2: ``_nodeid`` is a plain attribute, nothing to do
    coerce_node_id = None

if coerce_node_id is not None and not hasattr(Node, "_nodeid"):

    def _get_nodeid(node: Node) -> str:
        return node.nodeid

    def _set_nodeid(node: Node, value: str) -> None:
        node._id = coerce_node_id(value)

    Node._nodeid = property(_get_nodeid, _set_nodeid)
