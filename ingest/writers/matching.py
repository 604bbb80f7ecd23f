"""Which stored structure each frame of a batch is: by hash, by order-free hash, within tolerance.

Predictions, grades and other per-structure results name their structure by its atoms, not by
an id. A frame is matched, for a whole batch at a time:

1. by its content hash (DESIGN.md, Identity): one look-up for the batch;
2. else by the order-free hash (same atoms listed in another order): one look-up for the batch's
   misses, one read of the matched structures' atoms, and the permutation that puts the
   frame's per-atom arrays in stored order;
3. else within ``MATCH_TOL`` (positions written with fewer decimals, a coordinate on the other
   side of a 1e-6 Å rounding step), in any atom order: candidates are the stored structures of
   the same atom count, formula, pbc and cell (within the tolerance) whose structure factor is
   close enough to the frame's (a look-up in the sorted factors, which are computed once per
   ingest from one read of those structures' atoms); the candidates' atoms are read once for
   the batch and compared with the frames' all at once (:func:`tolerance_pairs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ingest.writers.readback import atom_index, lake_paths, read_atoms, rows_where_in
from warehouse import models as m
from warehouse.hashing import structure_hashes_batch
from warehouse.records import FrameBatch

if TYPE_CHECKING:
    from ingest.loader import Loader

# Two files describe the same structure when every atom is within this distance (Å, minimum
# image) of an atom of the same species: files written with 8 decimals differ by 5e-9 Å.
MATCH_TOL = 1e-5
# A frame that misses both hashes is compared atom by atom with at most this many candidates
# (the first by id of those that pass the structure-factor look-up); past that it counts as
# unmatched (and is reported as such). Bounds the work where the factors cannot tell structures
# apart (translated copies of a perfect lattice, whose factors all vanish).
MATCH_MAX_CANDIDATES = 64
_TWO_PI = 2 * np.pi


@dataclass
class Atoms:
    """Many structures' atoms, one after the other (the frames of a batch, stored candidates)."""

    counts: NDArray[np.int64]  # (S,)
    numbers: NDArray[np.integer]  # (N,)
    positions: NDArray[np.float64]  # (N, 3)
    cells: NDArray[np.float64]  # (S, 3, 3)
    pbcs: NDArray[np.bool_]  # (S, 3)

    @property
    def starts(self) -> NDArray[np.int64]:
        return np.cumsum(self.counts) - self.counts

    def rows(self, entries: NDArray[np.int64]) -> NDArray[np.int64]:
        """Atom rows of ``entries``, one after the other."""
        return np.repeat(self.starts[entries], self.counts[entries]) + atom_index(self.counts[entries])


class Matcher:
    """Matches frames to stored structures for one :class:`Loader`."""

    def __init__(self, loader: Loader) -> None:
        self.ld = loader
        # the tolerance path's candidates: the stored structures of a formula, and structure
        # factors by structure id, loaded once per ingest (again when it stores structures)
        self._by_formula: dict[str, _Group] = {}
        self._by_formula_at = -1
        self._factors: dict[int, NDArray[np.complex128]] = {}

    def lookup_hashes(self, hashes: list[str]) -> dict[str, int]:
        """hash -> structure id, of those of ``hashes`` that are stored (or added by this
        ingest); one statement per batch."""
        ld = self.ld
        cache = ld._sid_by_hash  # this ingest's own structures are in it already
        todo = [h for h in set(hashes) if h not in cache]
        rows = rows_where_in(ld._read_conn(), m.Structure.__table__, ("hash", "id"), "hash", todo)
        cache.update(dict(rows))
        return {h: cache[h] for h in hashes if h in cache}

    def match(self, b: FrameBatch) -> tuple[list[int | None], list[NDArray[np.int64] | None]]:
        """Stored structure id of each frame of ``b`` (None if absent) and, for a frame whose
        atoms come in another order, the permutation that puts its per-atom arrays in stored
        order (frame atom ``perm[k]`` is stored atom k)."""
        hashes, free = b.identity()
        known = self.lookup_hashes(hashes)
        sids: list[int | None] = [known.get(h) for h in hashes]
        perms: list[NDArray[np.int64] | None] = [None] * len(b)
        miss = [i for i, s in enumerate(sids) if s is None]
        if miss:
            self._order_free(b, miss, free, sids, perms)
            miss = [i for i in miss if sids[i] is None]
        if miss:
            self._within_tolerance(b, miss, sids, perms)
        return sids, perms

    def _conn(self):
        """Where stored structures are read: this ingest's own connection once it stored some
        (they are visible there only), else the loader's read connection."""
        ld = self.ld
        return ld.s.connection() if ld.summary.added.get("structures") else ld._read_conn()

    def _read(self, conn, ids: NDArray[np.int64], counts: NDArray[np.int64],
              files: NDArray[np.int64]) -> dict[str, np.ndarray]:
        self.ld.flush_lake_files()  # this ingest's own position files, if still being written
        return read_atoms(self.ld.wh.lake, lake_paths(conn, m.LakeFile.__table__,
                                                      np.unique(files).tolist()),
                          id_name="structure_id", owners=ids, files=files, counts=counts,
                          columns=("Z", "x", "y", "z"))

    def _order_free(self, b: FrameBatch, miss: list[int], free: list[str],
                    sids: list[int | None], perms: list[NDArray[np.int64] | None]) -> None:
        """Frames whose atoms are stored in another order: one look-up, one read of the stored
        atoms, the canonical orders of both sides compared."""
        conn = self._conn()
        rows = rows_where_in(conn, m.Structure.__table__,
                             ("order_free_hash", "id", "n_atoms", "cell", "pbc", "lake_file_id"),
                             "order_free_hash", [free[i] for i in miss])
        first: dict[str, tuple] = {}
        for r in sorted(rows, key=lambda r: r[1]):  # the lowest id, as a LIMIT 1 would
            first.setdefault(r[0], r)
        hit = [i for i in miss if free[i] in first]
        if not hit:
            return
        stored = [first[free[i]] for i in hit]
        ids = np.array([r[1] for r in stored], dtype=np.int64)
        counts = np.array([r[2] for r in stored], dtype=np.int64)
        got = self._read(conn, ids, counts, np.array([r[5] for r in stored], dtype=np.int64))
        _, _, stored_orders = structure_hashes_batch(
            got["Z"], np.column_stack([got["x"], got["y"], got["z"]]),
            np.stack([_cell(r[3]) for r in stored]), np.stack([_pbc(r[4]) for r in stored]), counts)
        frames = _frame_atoms(b, hit)
        _, _, orders = structure_hashes_batch(frames.numbers, frames.positions, frames.cells,
                                              frames.pbcs, frames.counts)
        for i, sid, order, stored_order in zip(hit, ids.tolist(), orders, stored_orders, strict=True):
            # stored atom stored_order[k] is the same atom as this frame's atom order[k]
            perm = np.empty_like(order)
            perm[stored_order] = order
            sids[i] = sid
            perms[i] = perm

    def _within_tolerance(self, b: FrameBatch, miss: list[int], sids: list[int | None],
                          perms: list[NDArray[np.int64] | None]) -> None:
        """Frames off both hashes: candidates found by their structure factors (see
        :func:`tolerance_pairs`) among the stored structures of the same formula, atoms read
        once for the batch, compared all at once."""
        conn = self._conn()
        d = b.description()
        formulas = [d.formulas[i] for i in miss]
        groups = self._candidates(conn, sorted(set(formulas)))
        frames = _frame_atoms(b, miss)
        near = self._near(groups, frames, formulas, [d.pbc_text[i] for i in miss])
        union: dict[str, NDArray[np.bool_]] = {}  # per formula: near any of its frames
        for f, mask in zip(formulas, near, strict=True):
            if mask is not None:
                union[f] = union[f] | mask if f in union else mask
        self._compute_factors(conn, {f: groups[f] for f in union}, union)
        pf, pc = self._pairs(groups, frames, formulas, near, union)
        if not pf:
            return
        cand_ids, pair_cand = np.unique(np.array(pc, dtype=np.int64), return_inverse=True)
        cands = self._atoms(conn, cand_ids, groups, formulas, pf, pc)
        found = tolerance_pairs(frames, cands, np.array(pf, dtype=np.int64), pair_cand)
        for p, perm in found.items():  # pairs in id order per frame: the first match wins
            i = miss[pf[p]]
            if sids[i] is None:
                sids[i] = int(pc[p])
                perms[i] = perm

    @staticmethod
    def _near(groups: dict[str, _Group], frames: Atoms, formulas: list[str],
              pbc_text: list[str]) -> list[NDArray[np.bool_] | None]:
        """Per frame, which stored structures of its formula have its atom count, pbc and cell
        (within MATCH_TOL); None where the formula has none. Computed once per distinct
        (formula, atom count, pbc, cell): many frames share one cell."""
        memo: dict[tuple, NDArray[np.bool_]] = {}
        out: list[NDArray[np.bool_] | None] = []
        for j, formula in enumerate(formulas):
            g = groups.get(formula)
            if g is None:
                out.append(None)
                continue
            key = (formula, int(frames.counts[j]), pbc_text[j], frames.cells[j].tobytes())
            if key not in memo:
                memo[key] = ((g.n_atoms == frames.counts[j]) & (g.pbc == pbc_text[j])
                             & (np.abs(g.cells - frames.cells[j]).max(axis=(1, 2)) <= MATCH_TOL))
            out.append(memo[key])
        return out

    def _compute_factors(self, conn, groups: dict[str, _Group],
                         rows: dict[str, NDArray[np.bool_]]) -> None:
        """Structure factors of the groups' ``rows`` not known yet: one read for all of them,
        kept for the ingest."""
        todo = [(g, np.array([k for k in np.flatnonzero(rows[f]).tolist()
                              if int(g.ids[k]) not in self._factors], dtype=np.int64))
                for f, g in groups.items()]
        todo = [(g, k) for g, k in todo if len(k)]
        if not todo:
            return
        ids = np.concatenate([g.ids[k] for g, k in todo])
        counts = np.concatenate([g.n_atoms[k] for g, k in todo])
        got = self._read(conn, ids, counts, np.concatenate([g.files[k] for g, k in todo]))
        atoms = Atoms(counts, got["Z"], np.column_stack([got["x"], got["y"], got["z"]]),
                      np.concatenate([g.cells[k] for g, k in todo]),
                      np.stack([_pbc(t) for g, k in todo for t in g.pbc[k]]))
        self._factors.update(zip(ids.tolist(), _factors(atoms, _inverses(atoms.cells, atoms.pbcs)[1])))

    def _pairs(self, groups: dict[str, _Group], frames: Atoms, formulas: list[str],
               near: list[NDArray[np.bool_] | None],
               union: dict[str, NDArray[np.bool_]]) -> tuple[list[int], list[int]]:
        """(frame, candidate id) pairs: per frame, its near structures whose first structure
        factor is within the frame's window (a look-up in the sorted factors), at most
        MATCH_MAX_CANDIDATES, in id order. Frames with no periodic axis: every near structure."""
        s_f = _factors(frames, _inverses(frames.cells, frames.pbcs)[1])[:, 0].real
        half = _window(frames)
        lookup: dict[str, tuple[NDArray, NDArray]] = {}  # formula -> sorted factors, their rows
        for f, mask in union.items():
            rows = np.flatnonzero(mask)
            factor = np.array([self._factors[i][0].real for i in groups[f].ids[rows].tolist()])
            order = np.argsort(factor)
            lookup[f] = (factor[order], rows[order])
        pf: list[int] = []
        pc: list[int] = []
        for j, (formula, mask) in enumerate(zip(formulas, near, strict=True)):
            if mask is None:
                continue
            if frames.pbcs[j].any():
                factor, rows = lookup[formula]
                lo = np.searchsorted(factor, s_f[j] - half[j], side="left")
                hi = np.searchsorted(factor, s_f[j] + half[j], side="right")
                take = np.sort(rows[lo:hi][mask[rows[lo:hi]]])
            else:
                take = np.flatnonzero(mask)
            ids = groups[formula].ids[take[:MATCH_MAX_CANDIDATES]].tolist()
            pf += [j] * len(ids)
            pc += ids
        return pf, pc

    def _atoms(self, conn, ids: NDArray[np.int64], groups: dict[str, _Group], formulas: list[str],
               pf: list[int], pc: list[int]) -> Atoms:
        """The stored structures ``ids`` (sorted) as :class:`Atoms`: one read per lake file."""
        where: dict[int, tuple[_Group, int]] = {}
        for j, sid in zip(pf, pc, strict=True):
            if sid not in where:
                g = groups[formulas[j]]
                where[sid] = (g, int(np.searchsorted(g.ids, sid)))
        meta = [where[int(i)] for i in ids]
        counts = np.array([g.n_atoms[k] for g, k in meta], dtype=np.int64)
        got = self._read(conn, ids, counts, np.array([g.files[k] for g, k in meta], dtype=np.int64))
        return Atoms(counts, got["Z"], np.column_stack([got["x"], got["y"], got["z"]]),
                     np.stack([g.cells[k] for g, k in meta]),
                     np.stack([_pbc(g.pbc[k]) for g, k in meta]))

    def _candidates(self, conn, formulas: list[str]) -> dict[str, _Group]:
        """formula -> the stored structures of that formula, in id order (loaded once per
        ingest, again when this ingest stores more structures)."""
        added = self.ld.summary.added.get("structures", 0)
        if added != self._by_formula_at:
            self._by_formula, self._by_formula_at = {}, added
        todo = [f for f in formulas if f not in self._by_formula]
        rows = rows_where_in(conn, m.Structure.__table__,
                             ("formula", "id", "n_atoms", "cell", "pbc", "lake_file_id"),
                             "formula", todo)
        grouped: dict[str, list[tuple]] = {f: [] for f in todo}
        for r in rows:
            grouped[r[0]].append(r)
        for f, rs in grouped.items():
            rs.sort(key=lambda r: r[1])
            self._by_formula[f] = _Group(
                np.array([r[1] for r in rs], dtype=np.int64),
                np.array([r[2] for r in rs], dtype=np.int64),
                np.stack([_cell(r[3]) for r in rs]) if rs else np.empty((0, 3, 3)),
                np.array([r[4] for r in rs], dtype=object),
                np.array([r[5] for r in rs], dtype=np.int64))
        return {f: self._by_formula[f] for f in formulas if len(self._by_formula[f].ids)}


@dataclass
class _Group:
    """The stored structures of one formula, in id order."""

    ids: NDArray[np.int64]
    n_atoms: NDArray[np.int64]
    cells: NDArray[np.float64]  # (K, 3, 3)
    pbc: NDArray[np.object_]  # "TTT"
    files: NDArray[np.int64]  # lake file of their atoms


def _cell(value: Any) -> NDArray[np.float64]:
    """A stored cell (JSON: text on SQLite, decoded already on PostgreSQL) as a 3x3 array."""
    return np.asarray(json.loads(value) if isinstance(value, str) else value,
                      dtype=np.float64).reshape(3, 3)


def _pbc(text: str) -> NDArray[np.bool_]:
    return np.array([c == "T" for c in text], dtype=np.bool_)


def _frame_atoms(b: FrameBatch, frames: list[int]) -> Atoms:
    """Frames ``frames`` of ``b`` as :class:`Atoms`."""
    idx = np.asarray(frames, dtype=np.int64)
    if len(idx) == len(b):
        return Atoms(b.counts, b.numbers, b.positions, b.cells, b.pbcs)
    whole = Atoms(b.counts, b.numbers, b.positions, b.cells, b.pbcs)
    rows = whole.rows(idx)
    return Atoms(b.counts[idx], b.numbers[rows], b.positions[rows], b.cells[idx], b.pbcs[idx])


# -- the comparison, on arrays ------------------------------------------------------------------


def tolerance_pairs(frames: Atoms, cands: Atoms, pf: NDArray[np.int64],
                    pc: NDArray[np.int64]) -> dict[int, NDArray[np.int64] | None]:
    """Which pairs (frame ``pf[p]``, candidate ``pc[p]``) are the same structure within
    ``MATCH_TOL``: pair index -> None (same atom order) or the permutation (frame atom
    ``perm[k]`` is candidate atom k). Pairs must share atom count, composition, pbc and cell
    (within the tolerance); the candidate's cell is used for both.

    Three steps, each on the survivors of the one before, all pairs at once:

    1. a necessary condition that ignores atom order: the structure factors
       S_k = sum_j Z_j exp(2 pi i f_jk) (f: fractional coordinates, k = a, b, c) of the two
       sides differ by at most what moving every atom by ``MATCH_TOL`` can change them (a
       bound from |exp(ix) - exp(iy)| <= |x - y|; pairs with no periodic axis skip it);
    2. the atoms in the same order, each within ``MATCH_TOL`` (minimum image), same species;
    3. for a pair that passed 1 but not 2, any order: a nearest-neighbour search over periodic
       images (:func:`tolerant_permutation`).

    A file of structures that are not stored stops at step 1 for nearly every pair, at the
    cost of a few numpy operations per atom of the batch and of the candidates.
    """
    out: dict[int, NDArray[np.int64] | None] = {}
    keep = _structure_factors_agree(frames, cands, pf, pc)
    same = _same_order(frames, cands, pf[keep], pc[keep])
    for p, ok in zip(np.flatnonzero(keep).tolist(), same.tolist(), strict=True):
        if ok:
            out[p] = None
            continue
        f, c = int(pf[p]), int(pc[p])
        fr, cr = frames.rows(np.array([f])), cands.rows(np.array([c]))
        perm = tolerant_permutation(cands.numbers[cr], cands.positions[cr], frames.numbers[fr],
                                    frames.positions[fr], cands.cells[c], cands.pbcs[c])
        if perm is not None:
            out[p] = perm
    return out


def _inverses(cells: NDArray[np.float64], pbcs: NDArray[np.bool_]) -> tuple[NDArray, NDArray]:
    """Each structure's cell and its inverse; identities where no axis is periodic (positions
    are then compared as they are, and a zero cell has no inverse)."""
    periodic = pbcs.any(axis=1)
    cells = np.where(periodic[:, None, None], cells, np.eye(3))
    return cells, np.linalg.inv(cells)


def _factors(atoms: Atoms, inv: NDArray[np.float64]) -> NDArray[np.complex128]:
    """(S, 3) structure factors of every structure of ``atoms``, with the inverse cells ``inv``."""
    owner = np.repeat(np.arange(len(atoms.counts)), atoms.counts)
    frac = np.einsum("ni,nij->nj", atoms.positions, inv[owner])
    z = atoms.numbers.astype(np.float64)[:, None]
    phase = _TWO_PI * frac
    out = np.empty((len(atoms.counts), 3), dtype=np.complex128)
    for k in range(3):
        out[:, k] = (np.bincount(owner, z[:, 0] * np.cos(phase[:, k]), len(atoms.counts))
                     + 1j * np.bincount(owner, z[:, 0] * np.sin(phase[:, k]), len(atoms.counts)))
    return out


def _window(frames: Atoms) -> NDArray[np.float64]:
    """Per frame, how far the first structure factor of a stored structure within MATCH_TOL
    can be from the frame's: the pair bound of :func:`_structure_factors_agree` for any cell
    within MATCH_TOL of the frame's (each entry), with a = |inv_f| (Frobenius, >= spectral) and
    e = 3 MATCH_TOL >= |C_c - C_f|: |inv_c| <= a / (1 - a e), |inv_c - inv_f| <= a^2 e / (1 - a e).
    Infinite where that expansion does not hold (a cell so small that it never happens)."""
    _, inv = _inverses(frames.cells, frames.pbcs)
    owner = np.repeat(np.arange(len(frames.counts)), frames.counts)
    z = frames.numbers.astype(np.float64)
    z_sum = np.bincount(owner, z, len(frames.counts))
    z_r = np.bincount(owner, z * np.linalg.norm(frames.positions, axis=1), len(frames.counts))
    a = np.linalg.norm(inv, axis=(1, 2))
    e = 3 * MATCH_TOL
    denom = 1 - a * e
    half = _TWO_PI * (MATCH_TOL * z_sum * a + z_r * a * a * e) / np.where(denom > 0.5, denom, np.nan)
    half = half * (1 + 1e-6) + 1e-9 * z_sum
    return np.where(np.isnan(half), np.inf, half)


def _structure_factors_agree(frames: Atoms, cands: Atoms, pf: NDArray[np.int64],
                             pc: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Step 1 of :func:`tolerance_pairs`: False where the pair certainly differs."""
    f_cells, f_inv = _inverses(frames.cells, frames.pbcs)
    c_cells, c_inv = _inverses(cands.cells, cands.pbcs)
    s_f, s_c = _factors(frames, f_inv), _factors(cands, c_inv)
    owner = np.repeat(np.arange(len(frames.counts)), frames.counts)
    z = frames.numbers.astype(np.float64)
    z_sum = np.bincount(owner, z, len(frames.counts))
    z_r = np.bincount(owner, z * np.linalg.norm(frames.positions, axis=1), len(frames.counts))
    # |S_frame(own cell) - S_frame(candidate's cell)| <= 2 pi |(inv_f - inv_c)[:, k]| sum Z|r|
    # |S_frame(candidate's cell) - S_candidate| <= 2 pi MATCH_TOL |inv_c[:, k]| sum Z
    bound = _TWO_PI * (np.linalg.norm(f_inv[pf] - c_inv[pc], axis=1) * z_r[pf, None]
                       + MATCH_TOL * np.linalg.norm(c_inv[pc], axis=1) * z_sum[pf, None])
    slack = 1e-9 * z_sum[pf, None] + 1e-6 * bound  # rounding in the sums of cos and sin
    agree = (np.abs(s_f[pf] - s_c[pc]) <= bound + slack).all(axis=1)
    return agree | ~cands.pbcs[pc].any(axis=1)


def _same_order(frames: Atoms, cands: Atoms, pf: NDArray[np.int64],
                pc: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Step 2 of :func:`tolerance_pairs`: every atom within MATCH_TOL of the candidate's atom
    of the same index (minimum image in the candidate's cell), of the same species."""
    if not len(pf):
        return np.zeros(0, dtype=np.bool_)
    cells, inv = _inverses(cands.cells, cands.pbcs)
    n = cands.counts[pc]
    fr, cr = frames.rows(pf), cands.rows(pc)
    pair = np.repeat(np.arange(len(pf)), n)
    frac = np.einsum("ni,nij->nj", frames.positions[fr] - cands.positions[cr], inv[pc][pair])
    frac -= np.where(cands.pbcs[pc][pair], np.rint(frac), 0.0)  # the nearest periodic image
    cart = np.einsum("ni,nij->nj", frac, cells[pc][pair])
    ok = ((cart * cart).sum(axis=1) <= MATCH_TOL**2) & (frames.numbers[fr] == cands.numbers[cr])
    return np.bincount(pair, ~ok, len(pf)) == 0


def tolerant_permutation(z_stored: NDArray, pos_stored: NDArray, z_frame: NDArray,
                         pos_frame: NDArray, cell: NDArray, pbc: NDArray) -> NDArray[np.int64] | None:
    """perm such that frame atom perm[i] is stored atom i (all within MATCH_TOL), or None."""
    from scipy.spatial import cKDTree

    if not np.array_equal(np.sort(z_stored), np.sort(z_frame)):
        return None
    if pbc.any():
        inv = np.linalg.inv(cell)
        fs, ff = pos_stored @ inv, pos_frame @ inv
        fs[:, pbc] %= 1.0
        ff[:, pbc] %= 1.0
        # compare in Cartesian space with periodic images of the frame's atoms around the cell
        shifts = np.array(np.meshgrid(*[[-1, 0, 1] if p else [0] for p in pbc])).T.reshape(-1, 3)
        images = (ff[None, :, :] + shifts[:, None, :]).reshape(-1, 3) @ cell
        dist, idx = cKDTree(images).query(fs @ cell, distance_upper_bound=MATCH_TOL * 10)
        idx = idx % len(ff)
    else:
        dist, idx = cKDTree(pos_frame).query(pos_stored, distance_upper_bound=MATCH_TOL * 10)
    if not np.all(dist <= MATCH_TOL) or len(np.unique(idx)) != len(idx):
        return None
    if not np.array_equal(z_frame[idx], z_stored):
        return None
    return idx.astype(np.int64)
