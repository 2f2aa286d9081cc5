"""One block of complete lines -> output bytes: one raw scan, then decode and confirm candidates only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from itertools import accumulate
from operator import add, itemgetter
from typing import Any

import hyperscan as hs
import msgspec

from shellsieve.compile.confirm import EventContext
from shellsieve.compile.ruleset import CompiledRule, Ruleset
from shellsieve.events.ecs import nest
from shellsieve.events.envelope import PROCESS_KEY, key_probes
from shellsieve.events.tolerant import NOT_JSON, first_reason, may_hide_duplicates, read
from shellsieve.run.correlate import SequenceState
from shellsieve.run.enrich import Gate, Hit, alert_line, disown, enrich, json_line, message_line, put
from shellsieve.run.eventtime import event_time
from shellsieve.run.keys import join_checks, under_key
from shellsieve.run.respell import respelled
from shellsieve.run.stats import Stats

__all__ = ["BlockMatcher"]


class _Any(msgspec.Struct):
    """Decodes any JSON object while skipping every field: a syntax check for lines without hits."""


_validator: msgspec.json.Decoder[_Any] = msgspec.json.Decoder(_Any)
# a whole block as one JSON array, in one C call
_block_raw: msgspec.json.Decoder[list[msgspec.Raw]] = msgspec.json.Decoder(list[msgspec.Raw])
_decode_plain = msgspec.json.decode
_first = itemgetter(0)
_encode = msgspec.json.Encoder().encode


class _Hits(list[tuple[int, int]]):
    """(pattern id, end offset) of a block's raw scan, allowed `per_line` hits per line of the block.

    The lines are counted only when the hits pass `budget` (a block's hits are few: ~9 for 100
    ECS lines of the shipped rules; counting every block's newlines cost 13% of the fast path), up
    to the hit; the next count waits until the hits have doubled, so counting stays linear."""

    __slots__ = ("budget", "block", "per_line", "base")

    def __init__(self, block: bytes, per_line: int) -> None:
        super().__init__()
        self.block = block
        self.per_line = self.budget = per_line
        self.base = 0  # where the line being scanned starts, when the block is scanned a line at a time

    def over(self, end: int) -> bool:
        """Past the bound? Else the next bound."""
        allowed = self.per_line * (self.block.count(b"\n", 0, end) + 1)
        if len(self) > allowed:
            return True
        self.budget = 2 * allowed
        return False


def _on_raw(pid: int, start: int, end: int, flags: int, hits: _Hits) -> bool | None:
    hits.append((pid, end))
    if len(hits) > hits.budget and hits.over(end):
        return True  # a match explosion: stop; the block is scanned again line by line (_single_hits)
    return None


def _on_line(pid: int, start: int, end: int, flags: int, hits: _Hits) -> bool | None:
    """`_on_raw` for a scan of one line of the block: the offset made the block's."""
    end += hits.base
    hits.append((pid, end))
    if len(hits) > hits.budget and hits.over(end):
        return True
    return None


def _on_single(pid: int, start: int, end: int, flags: int, hits: list[tuple[int, int]]) -> None:
    hits.append((pid, end))


def _malformed(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "invalid_utf8"
    if isinstance(exc, RecursionError):
        return "too_deep"
    if isinstance(exc, msgspec.ValidationError):
        return "not_object"
    return "invalid_json"


# msgspec raises UnicodeDecodeError on bad UTF-8 and RecursionError past ~1,000 levels of nesting,
# neither a DecodeError: each is caught per line.
_LINE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
# An untyped decode also raises ValidationError, for a number out of range (`1e400`, 5,000 digits).
_PLAIN_ERRORS = (*_LINE_ERRORS, msgspec.ValidationError)



def _is_utf8(data: bytes) -> bool:
    """ASCII (the usual case) is UTF-8 without building a str: isascii runs at ~25 GB/s, decode ~2."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _invalid_utf8(block: bytes, lines: list[bytes]) -> set[int]:
    """Indices of lines that are not valid UTF-8: one check of the whole block, per line only if it fails."""
    if _is_utf8(block):
        return set()
    return {i for i, line in enumerate(lines) if not _is_utf8(line)}


def _bytes_at(data: bytes | memoryview, positions: list[int]) -> bytes:
    return bytes(itemgetter(*positions)(data)) if len(positions) > 1 else bytes(data[p] for p in positions)


def _count_objects(block: bytes) -> int | None:
    """The number of lines of `block` if each is exactly one JSON object, else None: one msgspec call.

    The lines are checked as one JSON array, each newline turned into `,\n`. Counting its elements
    is not enough: a line may hold two (`{}, {}`) while another object runs over a newline
    (`{"a":[{}` then `{}]}`). So each element's length must be its line's (the byte after it is
    the line's newline): an element that started late would end past its line on a `,` or a
    newline, which no JSON value ends with, and every later one would too, past the last line.
    The `{` each line opens with makes each element an object.
    """
    body = block[:-1].replace(b"\n", b",\n")
    n = len(body) - len(block) + 2  # each newline grew by one byte: bytes.count cost more
    try:
        raws = _block_raw.decode(b"[" + body + b"]")
    except _LINE_ERRORS:
        return None
    if len(raws) != n or block[0] != 0x7B:  # {
        return None
    ends = list(map(add, accumulate(map(len, raws)), range(n)))
    if _bytes_at(block, ends) != b"\n" * n:
        return None
    # the byte after each newline but the last: the same positions, one byte on (no list built)
    if n > 1 and _bytes_at(memoryview(block)[1:], ends[:-1]) != b"{" * (n - 1):
        return None
    return n


# Field scans remembered across events: names, paths and many command lines recur on a host. Bounded:
# at most this many values of at most this many characters (a few MiB), forgotten all at once when full.
MEMO_ENTRIES = 16_384
MEMO_MAX_CHARS = 256


def _memoized(scan: Callable[[str], frozenset[int]]) -> Callable[[str], frozenset[int]]:
    """`scan` (the field patterns a value matches: a pure function of the value), remembered."""
    memo: dict[str, frozenset[int]] = {}
    get = memo.get

    def memo_scan(text: str) -> frozenset[int]:
        ids = get(text)
        if ids is None:
            ids = scan(text)
            if len(text) <= MEMO_MAX_CHARS:
                if len(memo) >= MEMO_ENTRIES:
                    memo.clear()
                memo[text] = ids
        return ids

    return memo_scan


def _event_time(value: Any) -> float:
    """The event's time, else its arrival time."""
    ts = event_time(value)
    return time.time() if ts is None else ts


class BlockMatcher:
    """Holds the ruleset, sequence state and counters across blocks."""

    def __init__(self, ruleset: Ruleset, stats: Stats, only_alerts: bool = False, max_open: int = 100_000,
                 prefilter: bool = True, gates: Sequence[Gate] = (), alert_docs: bool = False) -> None:
        self.rs = ruleset
        self.alert_docs = alert_docs  # --alert-docs split: each alert's documents follow its event
        # after confirmation, in order: each may drop hits (an exception, a suppressed repeat) or
        # annotate them; what is left is alerted and counted
        self.gates = tuple(gates)
        # prefilter=False decodes every line and evaluates every rule on it: the reference the raw-scan
        # fast path must equal byte for byte (tests/test_diff_fastpath.py)
        self.prefilter = prefilter
        self.stats = stats
        self.only_alerts = only_alerts
        self._now = 0.0  # latest event time seen by a sequence rule: expiry runs on event time
        self.all_rules = frozenset(range(len(ruleset.rules)))
        self.always = frozenset(ruleset.always)
        self._requires = join_checks(ruleset.requires)
        self.sequences: dict[int, SequenceState] = {
            cr.index: SequenceState(len(cr.sequence.steps), cr.sequence.maxspan, max_open)
            for cr in ruleset.rules if cr.sequence is not None
        }
        # A pattern only later steps need -> those sequences; a pattern of first steps -> theirs.
        self._late_only = {pid: frozenset(ri for ri, _ in pairs) for pid, pairs in ruleset.late_rules.items()
                           if pid not in ruleset.raw_rules}
        self._starts = {pid: s for pid, rules in ruleset.raw_rules.items()
                        if (s := frozenset(ri for ri in rules if ri in self.sequences))}
        self._scan_field = _memoized(ruleset.scan_field)
        self._keyed_rules = _redundant_keyed(ruleset, self._requires.keys())
        # No field the rules read is an object of the view: the typed view then reads the values the
        # untyped decode holds, which `_decoded` serves as the view, one decode a line.
        self._plain_view = not ruleset.schema.object_fields
        # `explain`'s window on the matcher: called with each decoded event (its view, the whole
        # event and its candidate rules) before they are confirmed; None on every real run
        self.observer: Callable[[Any, dict[str, Any], frozenset[int]], None] | None = None
        # Raw-scan callbacks allowed per line of a block: one per line pattern. Past that, the block
        # is scanned line by line in SINGLEMATCH mode, where a line cannot make more.
        self.line_patterns = ruleset.reserved_id + 1  # the last line pattern
        self._reserved = ruleset.reserved_id
        self.rescanned_blocks = 0  # blocks whose raw scan passed the bound
        acc = ruleset.accessors
        self._ts = acc["@timestamp"]
        self._quote = [(f, acc[f]) for f in ("@timestamp", "process.command_line", "process.entity_id",
                                              "process.pid")]

    # -- per block -------------------------------------------------------------------------
    @property
    def fast(self) -> bool:
        """Whether ECS blocks take the raw-scan fast path (and `process` can probe their format)."""
        return self.prefilter and not self.only_alerts and not self.always

    def process(self, block: bytes) -> bytes:
        """`block` holds whole lines, each ending in b"\\n"; returns the output for all of them."""
        if self.fast:
            out = self._process_fast(block, probe=False)
            if out is not None:
                self.expire_sequences()
                return out
        return self._process_lines(block)

    def process_ecs(self, block: bytes, envelope_ids: frozenset[int] = frozenset()) -> bytes | None:
        """`process` for a block of unknown format (only when `fast`): None, having counted nothing,
        unless it is all ECS for the fast path. Else a line holds a Sysmon or Wazuh key, is not one
        JSON object (a text line, a malformed one) or, for `envelope_ids` (the envelope keys to look
        for, of `rs.envelope_ids`), may be a shipper envelope, and the caller routes the block line
        by line."""
        out = self._process_fast(block, probe=True, envelope_ids=envelope_ids)
        if out is not None:
            self.expire_sequences()
        return out

    def _process_fast(self, block: bytes, probe: bool, envelope_ids: frozenset[int] = frozenset()
                      ) -> bytes | None:
        """One raw scan, the block checked as JSON in one call, then only candidate lines touched:
        every other byte is copied through in slices. None when the block holds a line that is not a
        valid JSON object or not UTF-8 (the line-by-line path then counts and wraps it), or under
        `probe` a format marker."""
        if not _is_utf8(block):
            return None
        spans = self._candidate_spans(block, probe, envelope_ids)
        if spans is None:
            return None
        n = _count_objects(block)
        if n is None:
            return None
        self.stats.lines_in += n
        self.stats.bytes_in += len(block)
        self.stats.lines_out += n
        out: list[Any] = []
        view = memoryview(block)  # the slices between candidates are copied once, by the join
        pos = 0
        for start, (end, rules, pids, late) in sorted(spans.items()):
            if late:
                rules = self._with_live(rules, late)
            if not rules and (pids is None or self._reserved not in pids):
                continue  # a valid JSON line no rule can hold on: it stays in the block's bytes
            result = self._evaluate(block[start:end], rules, pids)
            assert result is not None  # only None under only_alerts, which takes the other path
            out.append(view[pos:start])
            out.append(result)
            pos = end + 1
        if not out:
            return block
        out.append(view[pos:])
        return b"".join(out)

    def _process_lines(self, block: bytes) -> bytes:
        lines = block.split(b"\n")
        lines.pop()
        self.stats.lines_in += len(lines)
        self.stats.bytes_in += len(block)
        candidates = self._candidates(block, lines)
        bad_utf8 = _invalid_utf8(block, lines)
        out: list[bytes] = []
        append = out.append
        validate = _validator.decode
        only_alerts = self.only_alerts
        emitted = 0
        for i, line in enumerate(lines):
            cand = candidates.get(i)
            if cand is not None:
                rules = self._with_live(cand[0], cand[2]) if cand[2] else cand[0]
                # no rule left (a later step nobody waits for, a format key): as if no anchor fired
                cand = (rules, cand[1], ()) if rules or self._reserved in (cand[1] or ()) else None
            if bad_utf8 and i in bad_utf8:
                # msgspec does not check the UTF-8 of values it skips: such a line is read by the
                # tolerant reader if a rule may hold on it, else wrapped; the output must be valid JSON.
                if cand is not None:
                    result = self._evaluate(line, cand[0], cand[1], "invalid_utf8")
                    if result is not None:
                        append(result)
                        emitted += 1
                    continue
                self.stats.malformed["invalid_utf8"] += 1
                if not only_alerts:
                    append(message_line(line, malformed="invalid_utf8"))
                    emitted += 1
                continue
            if cand is None:
                if only_alerts:
                    continue
                try:
                    validate(line)
                except (*_LINE_ERRORS, msgspec.ValidationError) as exc:
                    reason = _malformed(exc)
                    self.stats.malformed[reason] += 1
                    append(message_line(line, malformed=reason))
                else:
                    append(line)
                    append(b"\n")
                emitted += 1
            else:
                result = self._evaluate(line, cand[0], cand[1])
                if result is not None:
                    append(result)
                    emitted += 1
        self.stats.lines_out += emitted
        self.stats.dropped += len(lines) - emitted  # --only-alerts
        self.expire_sequences()
        return b"".join(out)

    def _candidate_spans(self, block: bytes, probe: bool = False, envelope_ids: frozenset[int] = frozenset(),
                         whole: bool = True) -> dict[int, tuple[int, Any, set[int] | None, Any]] | None:
        """Line start -> (line end, candidate rules, line pattern ids (None: every rule may hold),
        (sequence, query) pairs that are candidates while live) for the lines where a whole anchor
        clause occurs; under `probe`, None if a format marker fires, or one of `envelope_ids` on a
        line that is not a process event.
        A line-database hit is that already (compile/lines.py): found from the hit offsets alone,
        with no work on lines without hits. `whole`: `block` is the input's, not one respelled line
        (`_respelled_span`), whose late hits are kept as the block's sequences may open before it."""
        hits, single = self._raw_hits(block)
        if not hits:
            return {}
        if probe:
            fired = [pid for pid, _ in hits]
            if not self.rs.format_ids.isdisjoint(fired):
                return None
            if envelope_ids and not envelope_ids.isdisjoint(fired):
                keys = [self.rs.envelope_ids[pid] for pid in envelope_ids if pid in fired]
                if _envelope_in(block, key_probes(tuple(keys))):
                    return None
        per_line: dict[int, set[int]] = {}
        rfind, find = block.rfind, block.find
        # A single-match scan reports a keyed literal once per line: its first occurrence may lie
        # under another key while a later one is under its own, so the key check is left out there.
        keyed = {} if single else self.rs.keyed
        idle = self._idle_late(hits) if whole else None
        if idle:
            hits = [h for h in hits if h[0] not in idle]
        # The line of each hit, found once per line and not by a search back per hit (quadratic on
        # a long line with many hits): hits come in order of end offset, so the search for the next
        # line starts where the current one ends.
        start, stop = 0, find(b"\n")
        keyed_rules = self._keyed_rules
        covered: set[int] = set()  # the rules of the line's keyed hits that passed so far
        for pid, end in hits:
            if not start <= end <= stop:
                start = rfind(b"\n", stop if end > stop else 0, end) + 1
                stop = find(b"\n", start)
                if stop < 0:
                    stop = len(block)
                covered = set()
            seen = per_line.get(start)
            if seen is not None and pid in seen:
                continue  # a keyed pattern is checked until it passes once in a line
            k = keyed.get(pid)
            if k is not None:
                # No key check where the pattern's rules are candidates of the line already (under a
                # web server, 2-3 keyed names and ids of one rule a line): as for joins, its id in
                # `pids` only lets a sequence look at one more step, whose check is exact.
                kr = keyed_rules.get(pid)
                if kr is None or not covered.issuperset(kr):
                    if not under_key(block, start, end, k):
                        continue
                    if kr is not None:
                        covered |= kr
            if seen is None:
                per_line[start] = {pid}
            else:
                seen.add(pid)
        spans: dict[int, tuple[int, Any, set[int] | None, Any]] = {}
        marker, raw_rules, late_rules = self.rs.marker_id, self.rs.raw_rules, self.rs.late_rules
        requires = self._requires
        for start, pids in per_line.items():
            end = find(b"\n", start)
            if marker in pids:  # an escape could spell any literal: the line respelled, scanned again
                span = self._respelled_span(block, start, end) if whole else (end, self.all_rules, None, ())
                if span is not None:
                    spans[start] = span
                continue
            rules: set[int] = set(self.always)
            late: list[tuple[int, int]] = []
            joins: list[int] = []
            for pid in pids:
                if pid in requires:
                    joins.append(pid)
                    continue
                r = raw_rules.get(pid)
                if r is not None:
                    rules.update(r)
                lr = late_rules.get(pid)
                if lr is not None:
                    late.extend(lr)
            if joins:
                # A join counts where each keyed set passes. Its check is skipped where it would add no
                # rule: under a web server every line is a candidate of those rules by another pattern.
                # The join's id stays in `pids` then, which only lets a sequence look at one more step.
                for pid in joins:
                    r = raw_rules.get(pid)
                    if (pid not in late_rules and (r is None or rules.issuperset(r))) \
                            or requires[pid].passes(block, start, end):
                        if r is not None:
                            rules.update(r)
                        lr = late_rules.get(pid)
                        if lr is not None:
                            late.extend(lr)
                    else:
                        pids = pids - {pid}
            if rules or late or self._reserved in pids:  # else only joins whose keyed set failed
                spans[start] = (end, rules, pids, late)
        return spans

    def _respelled_span(self, block: bytes, start: int, end: int) -> tuple[int, Any, set[int] | None, Any] | None:
        """The span of a line the escape marker fired on, from its escapes written as canonical JSON
        writes them (run/respell.py) and scanned alone: None when no anchor holds there (the line
        passes unread, as any other), every rule when the marker fires again (a fold character, a
        control character's escape)."""
        spans = self._candidate_spans(respelled(block[start:end]) + b"\n", whole=False)
        if not spans:
            return None
        _, rules, pids, late = spans[0]
        return end, rules, pids, late

    def _raw_hits(self, block: bytes) -> tuple[list[tuple[int, int]], bool]:
        """(pattern id, end offset) of the line patterns in `block`, and whether they came from the
        single-match rescan. A pattern that fires at every byte of a long line (`\\/` repeated, a
        join's last set after its first) would make one Python callback per byte: the scan stops
        once the block passes one callback per pattern per line, and each line is scanned again
        with the patterns in SINGLEMATCH mode, at most one callback per pattern per line."""
        hits = _Hits(block, self.line_patterns)
        try:
            if self.rs.per_line:
                self._scan_lines(block, hits)
            else:
                self.rs.database.scan(block, match_event_handler=_on_raw, context=hits)  # type: ignore[arg-type]  # hyperscan's stub types the context as object; the handler gets `hits`
            return hits, False
        except hs.ScanTerminated:
            pass
        self.rescanned_blocks += 1
        return self._single_hits(block), True

    def _scan_lines(self, block: bytes, hits: _Hits) -> None:
        """The line database over each line of `block` on its own (a ruleset of many joins,
        compile/lines.py PER_LINE_JOINS), hits at the block's offsets."""
        scan = self.rs.database.scan
        for start, stop in _lines(block):
            hits.base = start
            scan(block[start:stop], match_event_handler=_on_line, context=hits)  # type: ignore[arg-type]  # as in _raw_hits

    def _single_hits(self, block: bytes) -> list[tuple[int, int]]:
        single = self.rs.single_database
        assert single is not None  # compile_rules always builds it
        scan = single.scan
        hits: list[tuple[int, int]] = []
        line: list[tuple[int, int]] = []
        for start, stop in _lines(block):
            scan(block[start:stop], match_event_handler=_on_single, context=line)
            if line:
                hits += [(pid, start + end) for pid, end in line]
                line.clear()
        return hits

    def _idle_late(self, hits: list[tuple[int, int]]) -> set[int]:
        """The patterns that fired only for later steps of sequences that cannot wait for them in
        this block: nothing open at its start, no first step's pattern in it (nor the escape marker,
        which makes every step a candidate). A partial only comes into being where a first step
        holds, so dropping their hits changes nothing (`_with_live` would find none live); most late
        patterns (`"bash"`, `"process"`) fire on most lines of a Linux host."""
        fired = set(map(_first, hits))
        late = fired & self._late_only.keys()
        if not late or self.rs.marker_id in fired:
            return set()
        seqs = self.sequences
        maybe = {ri for ri, state in seqs.items() if state.open}
        for pid in fired & self._starts.keys():
            maybe |= self._starts[pid]
        return {pid for pid in late if self._late_only[pid].isdisjoint(maybe)}

    def _with_live(self, rules: Any, late: list[tuple[int, int]]) -> Any:
        """`rules` plus the sequences whose later query fired while it can matter: step k once a
        partial waits at step k - 1, `until` while any sequence is open. Read at the line's turn,
        after the lines before it have advanced the state."""
        live = set(rules)
        seqs = self.sequences
        for ri, k in late:
            if ri in live:
                continue
            state = seqs[ri]
            if state.open if k == state.n_steps else state.waiting[k - 1]:
                live.add(ri)
        return live

    def _candidates(self, block: bytes, lines: list[bytes]) -> dict[int, tuple[Any, set[int] | None, Any]]:
        """Line index -> (candidate rules, line pattern ids or None: all, live-gated sequence queries)
        for the line-by-line path and match_views."""
        if not self.prefilter:
            return dict.fromkeys(range(len(lines)), (self.all_rules, None, ()))
        spans = self._candidate_spans(block)
        cands: dict[int, Any] = {}
        if spans:  # (never None without probe)
            index = {start: i for i, start in enumerate(accumulate([0] + [len(x) + 1 for x in lines[:-1]]))}
            cands = {index[start]: (rules, pids, late) for start, (_, rules, pids, late) in spans.items()}
        if self.always:
            for i in range(len(lines)):
                cands.setdefault(i, (self.always, None, ()))
        return cands

    # -- per candidate line ----------------------------------------------------------------
    def _decode(self, line: bytes) -> tuple[Any, str | None]:
        try:
            return self.rs.schema.decoder.decode(line), None
        except msgspec.ValidationError:
            pass  # a rule field of an unexpected shape, or not an object: decode untyped
        except _LINE_ERRORS as exc:
            return None, _malformed(exc)
        try:
            doc = _decode_plain(line)
        except msgspec.ValidationError:
            return None, "out_of_range"
        except _LINE_ERRORS as exc:
            return None, _malformed(exc)
        return (doc, None) if isinstance(doc, dict) else (None, "not_object")

    def _evaluate(self, line: bytes, rules: Any, pids: set[int] | None, bad: str | None = None) -> bytes | None:
        """The output for a candidate line (None: nothing, under only_alerts). `bad`: a reason the
        strict decode is known to fail for, which skips it."""
        self.stats.candidates += 1
        if bad is None:
            view, doc, bad = self._decoded(line)
            if doc is not None:
                # msgspec keeps the last of duplicate keys, which may hide a matching occurrence:
                # two C calls say whether one may be there, before the rules run once on the event
                if not may_hide_duplicates(line, doc):
                    if rules is self.all_rules and self.prefilter:
                        rules, pids = self._respelled(doc)
                    return self._confirmed(line, view, doc, rules, pids)
                doc_read = read(line, merge_duplicates=True)
                if "duplicate_key" not in doc_read[1]:
                    return self._confirmed(line, view, doc, rules, pids)
                return self._tolerant(line, rules, pids, None, doc_read)
        return self._tolerant(line, rules, pids, bad)

    def _decoded(self, line: bytes) -> tuple[Any, dict[str, Any] | None, str | None]:
        """(the view the rules read, the whole event, None), or (None, None, why not). The whole event
        is what an alert is written from and the duplicate-key test reads. Where the rules read leaves
        only, it is the view too: the typed decode (2.4 us of a web-server event) is made only where the
        untyped one fails, which tells the reason as before."""
        if self._plain_view:
            try:
                doc = _decode_plain(line)
            except _PLAIN_ERRORS:
                doc = None
            if type(doc) is dict:
                return doc, doc, None
        view, bad = self._decode(line)
        if view is None:
            return None, None, bad
        try:
            return view, (view if type(view) is dict else _decode_plain(line)), None
        except _PLAIN_ERRORS:  # a number out of range where no rule reads
            return None, None, "out_of_range"

    def _respelled(self, doc: dict[str, Any]) -> tuple[Any, set[int] | None]:
        """The candidates of an event whose line holds an escape or a fold character (the marker:
        every rule), as the anchors find them in its canonical spelling: the event encoded again and
        scanned, as `match_views` does for other formats. An escaped command line then costs an
        encode and a scan, not every rule's check (4.9x a plain event -> see docs/performance.md).
        The marker again (a control character, a fold character): every rule still."""
        spans = self._candidate_spans(_encode(doc) + b"\n")
        if not spans:
            return self.always, set()
        _, rules, pids, late = spans[0]
        if pids is None:
            return self.all_rules, None
        return (self._with_live(rules, late) if late else rules), pids  # `always` among them

    def _confirmed(self, line: bytes, view: Any, doc: dict[str, Any], rules: Any, pids: set[int] | None
                   ) -> bytes | None:
        hits = self._hits(view, rules, pids, doc)
        if not hits:
            return None if self.only_alerts else self._unclaimed(line, doc, pids)
        return alert_line(enrich(doc, hits), hits, self.alert_docs)

    def _unclaimed(self, line: bytes, doc: dict[str, Any], pids: set[int] | None) -> bytes:
        """A JSON line without hits: as it came, unless it holds our reserved key (run/enrich.py
        `disown`), which moves aside so that no line the filter passes on carries one of ours."""
        if (pids is None or self._reserved in pids) and disown(doc):
            self.stats.disowned += 1
            return json_line(doc)
        return line + b"\n"

    def _tolerant(self, line: bytes, rules: Any, pids: set[int] | None, bad: str | None,
                  doc_read: tuple[dict[str, Any] | None, list[str]] | None = None) -> bytes | None:
        """A candidate line the strict decode refused (`bad`) or read short (duplicate keys), read by
        the tolerant reader: still confirmed, alerted with what can be read, and counted under its
        reason. `doc_read`: what the reader made of it already."""
        doc, found = doc_read or read(line, merge_duplicates=True)
        reason = first_reason(found, bad or "invalid_json")
        assert reason is not None
        self.stats.malformed[reason] += 1
        if doc is None:
            return None if self.only_alerts else message_line(line, malformed=reason)
        hits = self._hits(doc, rules, pids, doc)
        if reason in NOT_JSON:
            if not hits:
                return None if self.only_alerts else message_line(line, malformed=reason)
            return message_line(line, hits, self._fields_read(doc), reason, self.alert_docs)
        if not hits:  # valid JSON (out of range, duplicate keys): forwarded as it came
            return None if self.only_alerts else self._unclaimed(line, doc, pids)
        enrich(doc, hits)
        put(doc, "shellsieve.malformed", reason)
        return alert_line(doc, hits, self.alert_docs)

    def _fields_read(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The fields the rules read, from an event read by the tolerant reader, as nested ECS."""
        flat = {f: get(doc) for f, get in self.rs.accessors.items()
                if not any(p.isdigit() for p in f.split("."))}
        return nest(flat)

    def _hits(self, view: Any, rules: Any, pids: set[int] | None, doc: dict[str, Any]) -> list[Hit]:
        """Confirm the candidate rules on one decoded event, pass the hits through the gates; counts
        alerts and hits per rule. `pids`: the line patterns that fired (None: unknown), which tell a
        sequence its live steps. `doc`: the whole event as a dict, what the gates read."""
        if self.observer is not None:
            self.observer(view, doc, frozenset(rules))
        ctx = EventContext(view, self._scan_field)
        hits: list[Hit] = []
        for ri in sorted(rules):
            cr = self.rs.rules[ri]
            if cr.check is not None:
                if cr.check(ctx):
                    hits.append(Hit(cr.rule))
            else:
                hit = self._sequence(cr, ctx, pids)
                if hit is not None:
                    hits.append(hit)
        for gate in self.gates:
            if not hits:
                break
            hits = gate(doc, hits)
        if hits:
            self.stats.alerts += 1
            for h in hits:
                self.stats.hits[h.rule.id] += 1
        return hits

    def match_views(self, views: list[dict[str, Any]]) -> list[list[Hit]]:
        """Hits for events decoded from other formats into ECS dicts (auditd, Sysmon, Wazuh, text).

        Each is encoded as the ECS JSON line it stands for and goes through the same raw scan, so
        the anchors' guarantees hold unchanged; the confirm then reads the dict itself.
        """
        if not views:
            return []
        encoded = [_encode(v) for v in views]
        cands = self._candidates(b"\n".join(encoded) + b"\n", encoded)
        out: list[list[Hit]] = []
        for i, view in enumerate(views):
            cand = cands.get(i)
            rules = None if cand is None else self._with_live(cand[0], cand[2]) if cand[2] else cand[0]
            if not rules:
                out.append([])
                continue
            self.stats.candidates += 1
            out.append(self._hits(view, rules, cand[1], view))  # type: ignore[index]  # rules: cand is not None
        self.expire_sequences()
        return out

    def adopt(self, old: BlockMatcher, same: dict[int, int]) -> dict[int, SequenceState]:
        """Take over `old`'s state for the rules of `same` (index here -> index in `old`: the same id
        and query): their open sequences, the event clock and the counters. Returns the sequence
        states carried over, by old index."""
        carried: dict[int, SequenceState] = {}
        for new, prev in same.items():
            state = old.sequences.get(prev)
            if state is not None and new in self.sequences:
                self.sequences[new] = carried[prev] = state
        self._now = old._now
        self.rescanned_blocks += old.rescanned_blocks
        return carried

    def expire_sequences(self) -> None:
        for state in self.sequences.values():
            if state.open:
                state.expire(self._now)

    def _sequence(self, cr: CompiledRule, ctx: EventContext, pids: set[int] | None) -> Hit | None:
        seq = cr.sequence
        assert seq is not None
        state = self.sequences[cr.index]
        view = ctx.view
        ts: float | None = None
        # A query whose anchors did not fire in this line cannot hold on it: its check is skipped.
        ids = None if pids is None else seq.query_ids
        n = len(seq.steps)
        if (seq.until is not None and state.open and (ids is None or not ids[n].isdisjoint(pids))  # type: ignore[arg-type]  # ids is None when pids is
                and seq.until(ctx)):
            key = _key(view, seq.until_by)
            if key is not None:
                state.cancel(key)
        # A later step can only advance a partial that waits at the stage before it: while none waits,
        # the step is not checked (exact: the check is pure and advance() would do nothing).
        waiting = state.waiting
        done = None
        for step in range(n - 1, -1, -1):
            if step and not waiting[step - 1]:
                continue
            if ids is not None and ids[step].isdisjoint(pids):  # type: ignore[arg-type]  # ids is None when pids is
                continue
            if not seq.steps[step](ctx):
                continue
            key = _key(view, seq.by[step])
            if key is None:
                continue
            if ts is None:
                ts = _event_time(self._ts(view))
                self._now = max(self._now, ts)
            first = {f: get(view) for f, get in self._quote} if step == 0 else {}
            finished = state.advance(key, ts, step, first)
            if finished is not None:
                done = finished
        if done is None:
            return None
        return Hit(cr.rule, {"first": {k: v for k, v in done.first.items() if v is not None}})


def _lines(block: bytes) -> Iterator[tuple[int, int]]:
    """(start, end) of each non-empty line of `block`, its newline left out."""
    find = block.find
    start, n = 0, len(block)
    while start < n:
        stop = find(b"\n", start)
        if stop < 0:
            stop = n
        if stop > start:
            yield start, stop
        start = stop + 1


def _redundant_keyed(rs: Ruleset, joins: Any) -> dict[int, frozenset[int]]:
    """Keyed line patterns whose key check may be skipped on a line where their rules are candidates
    already -> those rules: patterns of no sequence's later step, no join, nor a marker of ours."""
    ours = {rs.marker_id, rs.reserved_id, *rs.format_ids, *rs.envelope_ids}
    return {pid: frozenset(rules) for pid, rules in rs.raw_rules.items()
            if pid in rs.keyed and rules and pid not in rs.late_rules and pid not in joins and pid not in ours}


def _envelope_in(block: bytes, keys: tuple[bytes, ...]) -> bool:
    """Whether a line holding one of the envelope `keys` may be an envelope: it holds no `process`
    key. The envelope markers report once per block (SINGLEMATCH: one callback, not one per line),
    so the lines holding a key are found here with bytes searches (~1 us a line, a callback and its
    bookkeeping per line cost 2.5); ECS events with a `message` (most of Elastic Defend's) stay on
    the fast path."""
    find, rfind = block.find, block.rfind
    for key in keys:
        pos = find(key)
        while pos >= 0:
            start = rfind(b"\n", 0, pos) + 1
            stop = find(b"\n", pos)
            if stop < 0:
                stop = len(block)
            # compact JSON writes the key as `"process":`; any other spacing is left to the regex
            if find(b'"process":', start, stop) < 0 and PROCESS_KEY.search(block, start, stop) is None:
                return True
            pos = find(key, stop)
    return False


def _key(view: Any, getters: tuple[Any, ...]) -> tuple[Any, ...] | None:
    vals = []
    for g in getters:
        v = g(view)
        if v is None:
            return None  # events without a join value never join
        vals.append(tuple(v) if isinstance(v, list) else v)
    key = tuple(vals)
    try:
        hash(key)
    except TypeError:  # an object (or a Raw number) as a join value: no join, as without a value
        return None
    return key
