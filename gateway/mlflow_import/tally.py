"""What an import did, per kind of object: imported, already present, skipped (with each reason)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

KINDS = ("experiments", "experiment tags", "runs", "run tags", "params", "metrics", "dataset inputs",
         "artifacts", "logged models", "logged model params", "logged model tags", "registered models",
         "model tags", "model versions", "version tags", "aliases", "users", "groups", "group members",
         "permissions")


@dataclass
class KindCount:
    """Counts for one kind."""

    imported: int = 0
    present: int = 0
    skipped: Counter = field(default_factory=Counter)


class Tally:
    """Counts every outcome; notes explain id mappings and anything an operator must act on."""

    def __init__(self) -> None:
        self.kinds: dict[str, KindCount] = {kind: KindCount() for kind in KINDS}
        self.notes: list[str] = []

    def imported(self, kind: str, n: int = 1) -> None:
        """``n`` objects of ``kind`` were written."""
        self.kinds[kind].imported += n

    def present(self, kind: str, n: int = 1) -> None:
        """``n`` objects of ``kind`` were already in mlgate (an earlier import, or the same name)."""
        self.kinds[kind].present += n

    def skipped(self, kind: str, reason: str, n: int = 1) -> None:
        """``n`` objects of ``kind`` were not imported, for ``reason``."""
        self.kinds[kind].skipped[reason] += n

    def note(self, text: str) -> None:
        """Something the operator should read (e.g. an experiment id that changed)."""
        self.notes.append(text)

    def counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {"imported", "present", "skipped"}}`` for every kind."""
        return {kind: {"imported": c.imported, "present": c.present, "skipped": sum(c.skipped.values())}
                for kind, c in self.kinds.items()}

    def to_json(self) -> dict:
        """The counts, skip reasons and notes as JSON-ready data."""
        return {"counts": self.counts(),
                "skipped": {kind: dict(c.skipped) for kind, c in self.kinds.items() if c.skipped},
                "notes": list(self.notes)}

    def render(self) -> str:
        """A plain-text summary table, then skip reasons and notes."""
        header = ("kind", "imported", "already present", "skipped")
        rows = [(kind, str(c["imported"]), str(c["present"]), str(c["skipped"])) for kind, c in self.counts().items()]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
        lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(r, widths, strict=True)))
                 for r in [header, *rows]]
        reasons = [f"  {kind}: {n} {reason}" for kind, c in self.kinds.items()
                   for reason, n in sorted(c.skipped.items())]
        if reasons:
            lines += ["", "skipped:", *reasons]
        if self.notes:
            lines += ["", "notes:", *(f"  {text}" for text in self.notes)]
        return "\n".join(lines)
