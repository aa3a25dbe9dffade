"""The policy file: its schema (sections ``network``, ``auth``, ``access``) and its loader."""

from policies.file.access import AccessConfig
from policies.file.document import PolicyFile
from policies.file.loader import load_policy_file, load_policy_text, policy_from_data
from policies.file.problems import PolicyFileError

__all__ = ["AccessConfig", "PolicyFile", "PolicyFileError", "load_policy_file", "load_policy_text",
           "policy_from_data"]
