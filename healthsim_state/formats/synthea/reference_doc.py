"""docs/synthea.md, written from the file and target declarations.

``python -m healthsim_state.formats.synthea.reference_doc > docs/synthea.md``;
a test compares the committed file with :func:`render`.
"""

from __future__ import annotations

from healthsim_state.formats.synthea.files import FILES, LAYOUTS, SyntheaFile
from healthsim_state.formats.synthea.importer import (
    ADD_ROWS,
    BATCH_ROWS,
    DUPLICATE_RULE,
    READ_AHEAD,
    STREAM_MEMORY_LIMIT,
    targets,
)
from healthsim_state.formats.synthea.reader import MEMORY_LIMIT
from healthsim_state.formats.synthea.targets import EXTENSION_KEY, Field, Target, is_id

INTRO = f"""# Synthea import

[Synthea](https://github.com/synthetichealth/synthea) generates synthetic
patients; its CSV output (one folder of files such as `patients.csv`,
`encounters.csv`, `observations.csv`) imports as one scenario:

```
healthsim import synthea path/to/output/csv --scenario synthea-run-1 [--overwrite] [--tag T]... [--json]
```

or, from Python, `healthsim_state.formats.synthea.import_synthea(session,
directory, scenario=...)`, which returns a summary: rows read per file,
entities saved per type, rows excluded per file with the reason, duplicate
identities per file, columns no Synthea release has, and the layout found.

**How it reads and writes.** DuckDB's own CSV reader loads every file into
a private DuckDB database in a scratch folder (whatever the store's backend;
it spills to disk past {MEMORY_LIMIT.replace("MB", " MB")}, and past {STREAM_MEMORY_LIMIT.replace("MB", " MB")} once the writer adds),
where each row is mapped in SQL and read back in file order, chunk by
chunk. The entities go in Arrow batches of {BATCH_ROWS:,}, an empty cell being
a field not given, read ahead of the writer on a thread of their own (DuckDB reads while
the writer encodes; up to {READ_AHEAD} batches wait, one more in the making), through the store's batch writer
(`repository.writer`), about {ADD_ROWS:,} entities (of one type or several) per add: each add is validated
like any other save (column by column) and committed, in a table private
to the import or (DuckDB, a store of at most a million entity rows) straight
into the entity tables, linked to no scenario; and when every file is done the
scenario is published in one transaction, together with the import's audit
event. So memory does not grow with the folder, no scenario shows before
the publish (docs/scale.md says what a query over an entity table sees
meanwhile), and a refused or killed import leaves no scenario behind (what
it wrote is removed, or cleaned by the next writer). The import
commits on a connection of its own; into an in-memory DuckDB store, which a
second connection cannot open, it is one save in the caller's transaction.
Only `patients.csv` is required; every other file is optional, and columns
may come in any order.

**Refused input.** A folder without `patients.csv`, or a file that is empty,
lacks a required column, has a row with too few or too many cells, an
unterminated quote, bytes that are not UTF-8, a cell that is not of its
column's type (a date, a number), an empty required cell, or a reference
(PATIENT, ENCOUNTER, ORGANIZATION, PROVIDER, PAYER, ...) to an Id the
folder does not have, is refused with the file, line and column named;
nothing is written. Dates may be dates (`2009-09-27`) or date-times
(`2023-01-27T16:17:47Z`), far-future STOP dates included.

**Identity.** Synthea Ids are UUIDs and become the entities' ids, so
importing the same folder again (with `--overwrite`) updates the same
entities in place, and a second Synthea run adds its own. Files without an
Id (conditions, medications, observations, ...) get a UUID derived from
their natural key (named per file below), the same on every import.
References use Synthea's Ids as business keys: a patient's `mrn` is its Id,
an encounter's `encounter_id` its Id, `patient_mrn` the PATIENT column, and
so on; they resolve to the entities imported with them.

**Duplicates.** When two rows of one import have the same identity, {DUPLICATE_RULE}
(canonical-models §2.5); the summary counts them per file, never silently.

**Nothing is dropped.** Every column of every file lands in a canonical
field or, verbatim (the text of the cell, null when empty), in the entity's
`extensions` under `{EXTENSION_KEY}`; columns no release has are kept there
too and reported. Codes keep their system (SNOMED, LOINC, RxNorm, CVX,
DICOM). Rows a file has but no entity stands for (the payment rows of a
claim line, say) are folded into the entity they belong to or listed as
exclusions below.

**Layouts.** {", ".join(f"`{layout}`" for layout in LAYOUTS)}: `v3.0` is Synthea v3.0;
`later` is what Synthea exports after it (patients.csv adds MIDDLE, FIPS and
INCOME; conditions.csv and procedures.csv add SYSTEM; payer_transitions.csv
has START_DATE/END_DATE, PLAN_OWNERSHIP and OWNER_NAME instead of
START_YEAR/END_YEAR, OWNERSHIP and OWNERNAME; payers.csv adds OWNERSHIP;
providers.csv has ENCOUNTERS and PROCEDURES instead of UTILIZATION;
patient_expenses.csv appears); `later-npi` adds NPI to organizations.csv
and providers.csv. Columns are matched by name (case-insensitively), older
spellings read as the latest one.

The tables below are generated from the mapping's declarations
(`healthsim_state/formats/synthea/`): per file, each column, the canonical
field it fills and the rule.
"""


def _field_names(target: Target, fld: Field) -> str:
    return f"`{target.entity_type}.{fld.path}`"


def _rows(spec: SyntheaFile, all_targets: tuple[Target, ...]) -> list[str]:
    own = [t for t in all_targets if t.file == spec.stem]
    reading = [(t, f) for t in all_targets for f in t.fields if (f.source or t.file) == spec.stem]
    rows = []
    for col in spec.columns:
        uses = [(t, f) for t, f in reading if col.name in f.columns]
        if not own and not uses:
            continue
        cells = []
        for t, f in uses:
            rule = f.note or ""
            needed = ", ".join(f"{n}.csv" for n in f.needs if n != spec.stem)
            if needed:
                rule = (rule + "; " if rule else "") + f"filled when {needed} is in the folder"
            cells.append((_field_names(t, f), rule))
        for t in own:
            if is_id(t) and t.identity[0] == col.name:
                cells.insert(0, (f"`{t.entity_type}.id`", "the entity id"))
            elif (
                t.query is None
                and not is_id(t)
                and col.name in t.identity
                and not any(col.name in f.columns for f in t.fields)
            ):
                cells.append((f"`{t.entity_type}.id`", "part of the natural key"))
            mapped = {c for f in t.fields if (f.source or t.file) == spec.stem for c in f.columns}
            kept = f"`{t.entity_type}` extensions `{EXTENSION_KEY}.{col.name}`"
            if col.name in t.also_kept:
                cells.append((kept, "also kept verbatim"))
            elif t.query is None and col.name not in mapped and not (is_id(t) and t.identity[0] == col.name):
                cells.append((kept, "kept verbatim"))
        spelling = col.name + "".join(f" (v3.0: {o})" for o in col.old_names)
        layouts = "all" if set(col.layouts) == set(LAYOUTS) else ", ".join(x for x in LAYOUTS if x in col.layouts)
        target_cell = "<br>".join(c for c, _ in cells)
        rule_cell = "<br>".join(r or "as is" for _, r in cells)
        rows.append(f"| {spelling} | {col.kind} | {layouts} | {target_cell} | {rule_cell} |")
    for t in own:
        for f in t.fields:
            if not f.columns and f.source is None:
                rows.append(f"| (none) | | | {_field_names(t, f)} | {f.note or 'constant'} |")
    return rows


def _section(spec: SyntheaFile, all_targets: tuple[Target, ...]) -> str:
    own = [t for t in all_targets if t.file == spec.stem]
    lines = [f"## {spec.name}", ""]
    required = "required" if spec.required else "optional"
    lines.append(f"{spec.description[:1].upper()}{spec.description[1:]}; {required}.")
    lines.append("")
    for t in own:
        identity = "its Id" if is_id(t) else "a UUID derived from " + ", ".join(t.identity)
        needs = f" Needs {', '.join(f'{n}.csv' for n in t.needs)}." if t.needs else ""
        lines.append(f"- **{t.entity_type}**: identity {identity}.{needs} {t.note}".rstrip())
        for text in (*t.exclusions, *(e.reason for e in t.excluded)):
            lines.append(f"  - excluded: {text}")
    borrowed = [t for t in all_targets if t.file != spec.stem and any(f.source == spec.stem for f in t.fields)]
    for t in borrowed:
        lines.append(f"- folded into **{t.entity_type}** ({t.file}.csv)")
    lines += ["", "| column | type | layouts | canonical field | rule |", "| --- | --- | --- | --- | --- |"]
    lines += _rows(spec, all_targets)
    return "\n".join(lines) + "\n"


def render() -> str:
    """The whole of docs/synthea.md."""
    all_targets = targets()
    return INTRO + "\n" + "\n".join(_section(spec, all_targets) for spec in FILES)


if __name__ == "__main__":
    print(render(), end="")
