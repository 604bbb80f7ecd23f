"""The leaderboard's exact sums, kept by the writers: tables ``leaderboard_sums`` and
``leaderboard_expected`` (models in ``warehouse.models``), read by leaderboards, breakdowns and
the ``v_leaderboard*`` views, which therefore never write and never join millions of rows.

What they hold is defined by the live statements of ``queries.breakdowns``: a *triple* is a
dataset member, its structure's reference at the dataset's level of theory, and a prediction of
that structure; ``leaderboard_sums`` sums the triples per (model, dataset, subset, number of
elements, element), ``leaderboard_expected`` counts the (member, reference) pairs.

How they are kept:

* :func:`add_run` adds, before an ingest commits, the sums of the triples and pairs that the
  ingest created (one of their rows has its ``ingest_run_id``), with additive upserts
  (``INSERT ... ON CONFLICT DO UPDATE SET x = x + excluded.x``). ``ingest.loader.ingest_run`` calls
  it; anything that writes members, references or predictions outside ``ingest_run`` must too.
  The loader says whether the run touched structures stored before it: when it did not (an
  ingest of new structures), the parts that need older rows are skipped.
* Removing a model or a dataset removes its rows by ``ON DELETE CASCADE``: nothing to call.
  Removing anything else that they count (a member, a reference, a prediction, a structure)
  must call :func:`rebuild` in the same transaction.
* :func:`rebuild` recomputes everything (the migration's backfill; a repair). :func:`differences`
  compares the kept rows with a fresh computation (tests, ``warehouse check``-style audits).

Concurrency. A triple can be created by two ingests together (A adds a member, B a prediction of
the same structure). Each ingest only sees its own rows and committed ones, so if both computed
their delta before either committed, neither would count that triple. On PostgreSQL the delta
and the commit therefore run under one transaction-level advisory lock: ingests do all their
other work in parallel and take turns only for this last step, and the later one sees the
earlier one's rows (the lock is released after the commit is visible). SQLite has one writer
at a time already. Deadlocks: the lock is taken last, after every other row lock the ingest
holds, and while it is held the ingest only upserts kept rows (which only lock holders write)
and checks their keys against ``models``/``datasets`` (FOR KEY SHARE). So two ingests cannot
deadlock here; only a concurrent removal of a model or dataset that this ingest's rows use can,
and PostgreSQL then aborts one of them (its retry repeats it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from sqlalchemy import (
    Connection,
    Float,
    Select,
    and_,
    case,
    cast,
    delete,
    func,
    literal_column,
    null,
    select,
    text,
    true,
)

from warehouse import models as m
from warehouse.db import dialect_insert

if TYPE_CHECKING:  # pandas only for the audit: an ingest must not pay for importing it
    import pandas as pd

S, E = m.LeaderboardSums.__table__, m.LeaderboardExpected.__table__
KEYS = ("dataset_id", "subset", "tagged", "n_elements", "element")
COUNTS = ("n_predicted", "n_failed", "n_energy", "f_n", "s_n", "id_sum", "fn_n")
FLOATS = ("e_abs", "e_sq", "f_abs", "f_sq", "s_abs", "s_sq", "fn_abs", "fn_sq")
# pg_advisory_xact_lock key of the kept-sums step ("lbsums" in ASCII): one number, so that no
# other advisory lock of the warehouse uses it by chance
ADVISORY_KEY = 0x6C6273756D73


def add_run(conn: Connection, run_id: int, *, older_structures: bool = True) -> None:
    """Add to the kept sums what ingest run ``run_id`` created; in its transaction, before commit.

    ``older_structures=False`` is the writer's promise that every member and reference of the
    run is of a structure that the run itself created. Then no older prediction, member or
    reference can meet them (rows of other runs can only be of structures that existed before
    this run), so only the new predictions' triples and the new members' pairs are summed: two
    statements instead of up to ten, for the common ingest of new structures.
    """
    if conn.dialect.name == "postgresql":  # see the module notes on concurrency
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})
    new = _new_kinds(conn, run_id)
    for stmt in _statements(conn.dialect.name, run_id, new, older=older_structures):
        conn.execute(stmt)


def _new_kinds(conn: Connection, run_id: int) -> set[str]:
    """Which of predictions, references and members the run added: the others' parts are skipped
    (an ingest of MD runs or timings adds none; building the statements costs more than these
    probes)."""
    out = set()
    for name, entity in (("predictions", m.Prediction), ("references", m.Reference),
                         ("members", m.DatasetMember)):
        probe = select(literal_column("1")).select_from(entity).where(
            _selective(conn.dialect.name, entity.ingest_run_id == run_id)).limit(1)
        if conn.execute(probe).first() is not None:
            out.add(name)
    return out


def rebuild(conn: Connection) -> None:
    """Recompute every kept row from the catalog (in the caller's transaction)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_KEY})
    conn.execute(delete(S))
    conn.execute(delete(E))
    for stmt in _statements(conn.dialect.name, None):
        conn.execute(stmt)


def _statements(dialect: str, run_id: int | None,
                new: set[str] = frozenset({"predictions", "references", "members"}),
                *, older: bool = True) -> Iterator:
    """The upserts that add the triples and pairs of ``run_id`` (of every run with None), for
    the kinds of rows in ``new`` that the run added.

    A new triple has a new prediction, or an older prediction and a new reference, or both older
    and a new member: three disjoint parts, each found through the index on its table's
    ``ingest_run_id``. Likewise a new pair has a new member, or an older member and a new
    reference. With ``older=False`` (see :func:`add_run`) the parts that need an older row of
    the run's structures are empty and left out.
    """
    dm, r, p = m.DatasetMember, m.Reference, m.Prediction
    if run_id is None:
        parts: list[tuple] = [()]
        pair_parts: list[tuple] = [()]
    else:
        def of_run(entity):
            return _selective(dialect, entity.ingest_run_id == run_id)

        new_refs, new_members = older and "references" in new, older and "members" in new
        parts = [(of_run(p),) if "predictions" in new else None,
                 (of_run(r), p.ingest_run_id != run_id) if new_refs else None,
                 (of_run(dm), r.ingest_run_id != run_id, p.ingest_run_id != run_id)
                 if new_members else None]
        pair_parts = [(of_run(dm),) if "members" in new else None,
                      (of_run(r), dm.ingest_run_id != run_id) if new_refs else None]
        parts = [w for w in parts if w is not None]
        pair_parts = [w for w in pair_parts if w is not None]
    for where in parts:
        for per_element in (False, True):
            yield _upsert(dialect, S, _sums(where, per_element=per_element))
    for where in pair_parts:
        for per_element in (False, True):
            yield _upsert(dialect, E, _expected(where, per_element=per_element))


def _selective(dialect: str, condition):
    """``condition``, marked for SQLite's planner as true for few rows, so that the index on
    ``ingest_run_id`` drives the join.

    SQLite judges that index by its statistics, where a run holds a good share of the rows (a
    catalog has few, large runs), and otherwise scans from another table: 5-20 s at DESIGN.md
    scale against well under a second through the index. PostgreSQL estimates a new run's rows
    from its own statistics.
    """
    if dialect != "sqlite":
        return condition
    return func.likelihood(condition, literal_column("0.001"))  # a constant, not a parameter


def _pairs(*where) -> Select:
    """FROM members joined to their datasets, structures and references at the dataset's level."""
    dm, d, r, s = m.DatasetMember, m.Dataset, m.Reference, m.Structure
    # "+ 0" (and "|| ''" below): members and references are reached by structure (or drive the
    # join), never through an index on their dataset or level, which reads a whole dataset per
    # row. PostgreSQL takes such paths when it believes tables small (no statistics yet: a
    # fresh catalog, or rows this very transaction wrote): 2-3 s instead of a few ms per
    # statement for a first ingest of 3,000 structures. So every table has one way in.
    return (select(dm.dataset_id).select_from(dm)
            .join(d, d.id == dm.dataset_id + 0)
            .join(r, and_(r.structure_id == dm.structure_id,
                          r.level_of_theory_id + 0 == d.level_of_theory_id))
            .join(s, s.id == dm.structure_id)
            # a WHERE always: SQLite's parser needs one before an upsert's ON CONFLICT
            .where(*(where or (true(),))))


EMPTY = literal_column("''")  # inline, not a parameter: GROUP BY must repeat the same expression


def _keys(per_element: bool) -> list:
    """The group keys of a kept row, in KEYS order, from the joined rows (see _pairs)."""
    dm, s, se = m.DatasetMember, m.Structure, m.StructureElement
    return [dm.dataset_id, func.coalesce(dm.subset, EMPTY), dm.subset.isnot(None), s.n_elements,
            se.element if per_element else EMPTY]


def _group(keys: list) -> list:
    return [k for k in keys if k is not EMPTY]


def _sums(where: tuple, *, per_element: bool) -> Select:
    dm, r, p, pe = m.DatasetMember, m.Reference, m.Prediction, m.PredictionError
    se, pee = m.StructureElement, m.PredictionElementError
    # The error rows are found through their primary key's leading prediction_id. "+ 0" keeps
    # the planners off the index on reference_id, which they otherwise take when a new run's
    # rows are not in their statistics yet: it holds a row per model for each reference, all
    # read and filtered (PostgreSQL, a model's 60k predictions: 17 s against about 1 s).
    stmt = (_pairs(*where).join(p, p.structure_id == dm.structure_id)
            .outerjoin(pe, and_(pe.prediction_id == p.id, pe.reference_id + 0 == r.id)))
    forces = pe
    if per_element:  # energy and stress of the structures containing it, forces of its atoms
        stmt = stmt.join(se, se.structure_id == dm.structure_id).outerjoin(
            pee, and_(pee.prediction_id == p.id, pee.reference_id + 0 == r.id,
                      pee.element.concat(EMPTY) == se.element))
        forces = pee
    e = pe.energy_diff_per_atom
    if per_element:  # the force-norm sums are per structure only (queries.breakdowns)
        none = cast(null(), Float)  # typed: PostgreSQL resolves an untyped NULL as text
        norm = [literal_column("0"), none, none]
    else:
        norm = [func.coalesce(func.sum(case((pe.force_norm_sum.isnot(None), pe.n_atoms))), 0),
                func.sum(pe.force_norm_sum), func.sum(pe.force_norm_sq_sum)]
    # "+ 0": SQLite without statistics would otherwise read every prediction through the index
    # on model_id (rows come out in group order) instead of only the run's, through its index
    keys = [(p.model_id + 0).label("model_id"), *_keys(per_element)]
    return stmt.with_only_columns(
        *keys,
        func.count(case((p.status == "ok", 1))),
        func.count(case((p.status == "failed", 1))),
        func.count(e),
        func.coalesce(func.sum(forces.force_n), 0),
        func.coalesce(func.sum(pe.stress_n), 0),
        func.sum(p.id),
        norm[0],
        func.sum(func.abs(e)), func.sum(e * e),
        func.sum(forces.force_abs_sum), func.sum(forces.force_sq_sum),
        func.sum(pe.stress_abs_sum), func.sum(pe.stress_sq_sum),
        *norm[1:],
        func.max(p.ingest_run_id),
        maintain_column_froms=True,
    ).group_by(*_group(keys))


def _expected(where: tuple, *, per_element: bool) -> Select:
    dm, s, se = m.DatasetMember, m.Structure, m.StructureElement
    stmt = _pairs(*where)
    if per_element:
        stmt = stmt.join(se, se.structure_id == dm.structure_id)
    keys = _keys(per_element)
    return stmt.with_only_columns(
        *keys, func.count(), func.sum(se.count if per_element else s.n_atoms),
        maintain_column_froms=True,
    ).group_by(*_group(keys))


def _columns(table) -> tuple[list[str], list[str]]:
    """(every column in insert order, the key columns) of a kept table."""
    if table is S:
        return ["model_id", *KEYS, *COUNTS, *FLOATS, "max_run"], ["model_id", *KEYS]
    return [*KEYS, "n_structures", "n_atoms"], list(KEYS)


def _upsert(dialect: str, table, rows: Select):
    """INSERT the grouped ``rows``; where a row with the same keys exists, add to it."""
    names, key_names = _columns(table)
    ins = dialect_insert(dialect)(table).from_select(names, rows)
    t, new = table.c, ins.excluded
    update = {}
    for c in names:
        if c in key_names:
            continue
        if c in FLOATS:  # SQL's sum over no value is NULL, so NULL + x must be x here
            update[c] = func.coalesce(t[c] + new[c], t[c], new[c])
        elif c == "max_run":
            update[c] = case((t[c].is_(None) | (new[c] > t[c]), new[c]), else_=t[c])
        else:
            update[c] = t[c] + new[c]
    return ins.on_conflict_do_update(index_elements=key_names, set_=update)


def differences(conn: Connection) -> pd.DataFrame:
    """Kept rows that differ from a fresh computation (empty when the kept sums are exact).

    Columns: table, the keys, column, kept, fresh. Floating-point sums compare to 1e-9 relative
    (an incremental sum adds in another order than a fresh one).
    """
    import pandas as pd

    out = []
    for table, fresh_rows, key_names in (
            (S, [_sums((), per_element=False), _sums((), per_element=True)], ["model_id", *KEYS]),
            (E, [_expected((), per_element=False), _expected((), per_element=True)], list(KEYS))):
        names = _columns(table)[0]
        fresh = pd.concat([pd.DataFrame(conn.execute(q).all(), columns=names) for q in fresh_rows])
        kept = pd.DataFrame(conn.execute(select(*(table.c[n] for n in names))).all(), columns=names)
        for df in (fresh, kept):
            df["tagged"] = df["tagged"].astype(bool)
        both = kept.merge(fresh, on=key_names, how="outer", suffixes=("_kept", "_fresh"),
                          indicator=True)
        for c in names:
            if c in key_names:
                continue
            a, b = both[f"{c}_kept"], both[f"{c}_fresh"]
            a_num, b_num = pd.to_numeric(a).astype(float), pd.to_numeric(b).astype(float)
            if c in COUNTS or c in ("n_predicted", "n_structures", "n_atoms"):
                a_num, b_num = a_num.fillna(0), b_num.fillna(0)
            same = ((a_num - b_num).abs() <= 1e-9 * b_num.abs().clip(lower=1e-300)) | (
                a_num.isna() & b_num.isna()) | (a_num == b_num)
            for _, row in both[~same].iterrows():
                out.append({"table": table.name, **{k: row[k] for k in key_names}, "column": c,
                            "kept": row[f"{c}_kept"], "fresh": row[f"{c}_fresh"]})
    return pd.DataFrame(out)
