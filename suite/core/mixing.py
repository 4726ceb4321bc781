"""Runs that may be set side by side. A history or an A/B pair of runs from different devices,
presets or timing methods measures those differences, not the code's: `history` and `ab` refuse
them with one line unless told, per field, that the mix is meant.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from suite.core.errors import UsageError

# What must agree between runs, and the flag that lets it differ.
MIXABLE = {
    "device": "--allow-device-mismatch",
    "preset": "--allow-preset-mismatch",
    "timing": "--allow-timing-mismatch",
}


def refuse_mixed(runs: Sequence[tuple[str, Mapping]], allowed: Collection[str] = ()) -> list[str]:
    """Check that the runs, (name, record with the MIXABLE fields), agree on every field of
    MIXABLE: UsageError naming the first field that differs and its flag, unless the field is in
    `allowed`; then a note saying the runs were set side by side anyway."""
    unknown = set(allowed) - MIXABLE.keys()
    if unknown:
        raise ValueError(f"cannot allow mixing {sorted(unknown)}; only {', '.join(MIXABLE)}")
    notes = []
    for field, flag in MIXABLE.items():
        first_of = {}  # value -> the first run that has it
        for name, record in runs:
            first_of.setdefault(str(record.get(field) or "unknown"), name)
        if len(first_of) < 2:
            continue
        differ = f"the runs differ in {field}: " + ", ".join(f"{v!r} ({name})" for v, name in first_of.items())
        if field not in allowed:
            raise UsageError(f"{differ}; pass {flag} to set them side by side anyway")
        notes.append(f"{differ} (set side by side anyway: {flag})")
    return notes
