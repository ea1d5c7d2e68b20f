"""Checkers: each takes a history (list of operation records, history.py) and returns
violations. They look only at the records, so hand-made histories test them (selftest.py).

Terms: an operation is *acknowledged* when its type is "ok"; a write of unknown outcome
("info") may or may not have been applied; a "fail" was not applied. A read's *horizon* is
its invoke time minus the allowed staleness (0 with consistent reads): a write acknowledged
before the horizon must be visible to it.
"""
from history import Violation

MS = 1_000_000


def by_key(ops):
    out = {}
    for o in ops:
        out.setdefault(o["key"], []).append(o)
    return out


# --- 1. add: exactly one acknowledged winner per key ----------------------------------------

def check_add(ops, stale_ns=0):
    """Per key, with adds racing and a final read afterwards:
    A1  at most one add answers "written" (exit 0);
    A2  if some add answered "already live" (exit 1), some add won or had an unknown outcome;
    A3  a read (after every add of the key completed) answers the winner's value; with no
        winner, a miss (only if no add answered "already live") or the value of an add whose
        outcome is unknown - never the value of an add answered "already live" or failed, nor
        a value nobody added. A miss whose invoke is within the staleness window of the
        winner's completion is excused (eventually consistent reads).
    """
    v = []
    for key, kops in by_key(ops).items():
        adds = [o for o in kops if o["op"] == "add"]
        reads = [o for o in kops if o["op"] == "get" and o["type"] == "ok"]
        winners = [o for o in adds if o["type"] == "ok" and o["value"] is True]
        losers = [o for o in adds if o["type"] == "ok" and o["value"] is False]
        unknown = [o for o in adds if o["type"] == "info"]
        if len(winners) > 1:
            v.append(Violation("A1 one winner", f"{len(winners)} adds of {key} answered 'written'", winners))
        read_flagged = False
        for r in reads:
            val = r["value"]
            if len(winners) == 1:
                w = winners[0]
                if val == w["arg"]:
                    continue
                if val is None and r["invoke"] - stale_ns < w["complete"]:
                    continue  # a stale miss within the window
                src = [o for o in adds if o["arg"] == val]
                v.append(Violation("A3 winner's value",
                                   f"read of {key} answered {val!r}, the winner wrote {w['arg']!r}",
                                   [w, r, *src]))
                read_flagged = True
            elif val is None:
                if losers and r["invoke"] - stale_ns >= min(o["complete"] for o in losers):
                    v.append(Violation("A3 winner's value",
                                       f"an add of {key} answered 'already live', yet a later read misses",
                                       [losers[0], r]))
                    read_flagged = True
            else:
                src = [o for o in adds if o["arg"] == val]
                if not src:
                    v.append(Violation("A3 winner's value", f"read of {key} answered {val!r}, which no add wrote", [r]))
                    read_flagged = True
                elif src[0]["type"] != "info":
                    said = "'already live'" if src[0]["type"] == "ok" else f"failed (rc {src[0]['rc']})"
                    v.append(Violation("A3 winner's value",
                                       f"read of {key} answered the value of an add that answered {said}",
                                       [src[0], r],
                                       note="an add reporting its own write as 'already live': the write was "
                                            "applied, its answer lost, and the retry found it"))
                    read_flagged = True
        if losers and not winners and not unknown and not read_flagged:
            v.append(Violation("A2 a winner exists",
                               f"{len(losers)} adds of {key} answered 'already live' but none won and none "
                               "had an unknown outcome", adds))
    return v


# --- 2. incr: nothing lost, nothing applied twice -------------------------------------------

def subset_sums(deltas):
    """A bitset (int) of every sum of a subset of deltas."""
    bits = 1
    for d in deltas:
        bits |= bits << d
    return bits


def check_incr(ops, stale_ns=0):
    """Per counter, with positive deltas:
    I1  no value is returned by two acknowledged incrs;
    I2  an acknowledged incr's value includes its own delta and every delta acknowledged
        before it was invoked: value >= delta + sum(acknowledged deltas completed before);
    I3  between consecutive returned values (in value order, starting from 0), the growth
        minus the later incr's delta is a sum of unknown-outcome deltas (every acknowledged
        incr reports its own value, so nothing else can fill the gap);
    I4  a read's value F satisfies: F <= sum(acknowledged) + sum(unknown outcome), and
        F >= the sum of deltas acknowledged before its horizon, and F >= every value returned
        before its horizon; after the last returned value, the growth F - last is a sum of
        unknown-outcome deltas (reads after all incrs completed, before the horizon).
    """
    v = []
    for key, kops in by_key(ops).items():
        incrs = [o for o in kops if o["op"] == "incr"]
        acked = [o for o in incrs if o["type"] == "ok"]
        unknown = [o for o in incrs if o["type"] == "info"]
        seen = {}
        for o in acked:
            if o["value"] in seen:
                v.append(Violation("I1 no value twice", f"two incrs of {key} returned {o['value']}",
                                   [seen[o["value"]], o]))
            seen[o["value"]] = o
        for o in acked:
            before = [p for p in acked if p is not o and p["complete"] < o["invoke"]]
            low = o["arg"] + sum(p["arg"] for p in before)
            if o["value"] < low:
                v.append(Violation("I2 includes acknowledged deltas",
                                   f"incr {key} +{o['arg']} returned {o['value']}, below {low} (its delta and "
                                   f"{len(before)} acknowledged before it)", [*before, o]))
        failed = [o for o in incrs if o["type"] == "fail"]
        sums = subset_sums(o["arg"] for o in unknown)
        chain = sorted(acked, key=lambda o: o["value"])
        prev = None
        for o in chain:
            base = prev["value"] if prev else 0
            gap = o["value"] - base - o["arg"]
            if gap < 0 or not (sums >> gap) & 1:
                why = (f"grew by {o['value'] - base} from {base} to {o['value']} with delta {o['arg']}: "
                       f"{gap} more than any sum of the {len(unknown)} unknown-outcome deltas")
                # Could increments reported as failed fill the gap? Then one of them was applied
                # although its error said it was not (an earlier attempt's answer was lost).
                lo = prev["invoke"] if prev else 0
                near = [f for f in failed if f["complete"] > lo and f["invoke"] < o["complete"]]
                if gap > 0 and (subset_sums([f["arg"] for f in near] + [u["arg"] for u in unknown]) >> gap) & 1:
                    note = (f"the gap is a sum of deltas including incrs reported as failed ({len(near)} overlap): "
                            "a 'failed' increment was applied (an earlier attempt's answer was lost, the "
                            "retries then failed)")
                    shown = [p for p in (prev, o) if p] + near[:8]
                else:
                    # An acknowledged increment whose delta is the gap and that could have
                    # been applied in it: applied here, and again where its value was returned.
                    # Else one whose delta plus some unknown or 'failed' deltas is the gap.
                    around = [x for x in acked if x["invoke"] < o["complete"] and x["complete"] > lo]
                    twice = [x for x in around if x["arg"] == gap]
                    if not twice:
                        near = [f for f in failed if f["complete"] > lo and f["invoke"] < o["complete"]]
                        rest = subset_sums([f["arg"] for f in near] + [u["arg"] for u in unknown])
                        twice = [x for x in around if 0 < gap - x["arg"] and (rest >> (gap - x["arg"])) & 1]
                    if twice:
                        x = twice[0]
                        who = "this increment itself" if x is o else f"incr {x['id']} (+{x['arg']}, returned {x['value']})"
                        fills = "fills this gap" if x["arg"] == gap else "with unknown or 'failed' deltas fills this gap"
                        note = (f"{who} was applied twice: its delta {fills} and it was applied again "
                                "for the answer it returned (answer lost, retried)")
                    else:
                        note = "an increment applied twice (answer lost, retried) leaves such a gap"
                    shown = [p for p in (prev, o) if p] + twice[:1] + [
                        u for u in unknown if u["complete"] > lo and u["invoke"] < o["complete"]][:10]
                v.append(Violation("I3 growth explained", f"counter {key} {why}", shown, note=note))
            prev = o
        total_acked = sum(o["arg"] for o in acked)
        total_unknown = sum(o["arg"] for o in unknown)
        for r in (o for o in kops if o["op"] == "get" and o["type"] == "ok"):
            f = int(r["value"]) if r["value"] is not None else 0
            horizon = r["invoke"] - stale_ns
            if f > total_acked + total_unknown:
                v.append(Violation("I4 final value bounds",
                                   f"counter {key} reads {f}, above {total_acked} acknowledged + {total_unknown} "
                                   f"unknown = {total_acked + total_unknown}",
                                   [r, *(chain[-3:])], note=f"{len(acked)} acknowledged, {len(unknown)} unknown incrs"))
                continue
            need = [o for o in acked if o["complete"] <= horizon]
            low = sum(o["arg"] for o in need)
            if f < low:
                v.append(Violation("I4 final value bounds",
                                   f"counter {key} reads {f}, below the {low} acknowledged before it", [*need[-5:], r]))
                continue
            newest = max((o for o in need), key=lambda o: o["value"], default=None)
            if newest and f < newest["value"]:
                v.append(Violation("I4 final value bounds",
                                   f"counter {key} reads {f}, below {newest['value']} returned before it", [newest, r]))
                continue
            if chain and all(o["complete"] <= horizon for o in incrs):
                gap = f - chain[-1]["value"]
                if gap > 0 and not (sums >> gap) & 1:
                    v.append(Violation("I4 final value bounds",
                                       f"counter {key} reads {f}, {gap} above the last returned value "
                                       f"{chain[-1]['value']}: no sum of unknown-outcome deltas", [chain[-1], r]))
    return v


# --- 3. get-or-run --lease: one run while the lease holds -----------------------------------

def check_lease(ops, lease_ns, stale_ns=0):
    """Per key, with callers of `get-or-run --lease L` racing and a command that records
    each run (pseudo-operations "run": invoke = the command's start, complete = its end;
    arg = the get-or-run operation that ran it):
    L1  no run starts while another run's lease surely holds: after run R1 started and
        before min(R1's start + L, the completion of the get-or-run that ran R1 - or R1's
        end when that get-or-run failed: it may have released the lease then);
    L2  every value a get-or-run printed is the output of a run of that key;
    L3  a later read answers the output of a run of that key, and not a miss when some
        get-or-run printed a value (it was cached).
    """
    v = []
    for key, kops in by_key(ops).items():
        runs = sorted((o for o in kops if o["op"] == "run"), key=lambda o: o["invoke"])
        callers = {o["id"]: o for o in kops if o["op"] == "get-or-run"}
        outputs = {o["value"]: o for o in runs}
        for i, r2 in enumerate(runs):
            for r1 in runs[:i]:
                holder = callers.get(r1["arg"])
                end = r1["invoke"] + lease_ns
                if holder:
                    # A caller that failed may have released its lease as soon as its run ended.
                    end = min(end, holder["complete"] if holder["type"] == "ok" else r1["complete"])
                if r1["invoke"] <= r2["invoke"] < end:
                    inv = [r1, r2] + [c for c in (holder, callers.get(r2["arg"])) if c]
                    v.append(Violation("L1 one run per lease",
                                       f"{key}: a second run started {(r2['invoke'] - r1['invoke']) / MS:.0f} ms "
                                       "after the first, while its lease held", inv))
                    break
        got = [o for o in callers.values() if o["type"] == "ok"]
        for o in got:
            if o["value"] not in outputs:
                v.append(Violation("L2 printed a run's output",
                                   f"{key}: get-or-run printed {o['value']!r}, the output of no run", [o, *runs[:2]]))
        for r in (o for o in kops if o["op"] == "get" and o["type"] == "ok"):
            if r["value"] is None:
                done = [o for o in got if o["complete"] <= r["invoke"] - stale_ns]
                if done:
                    v.append(Violation("L3 cached", f"{key}: a read misses after get-or-run printed a value",
                                       [done[0], r]))
            elif r["value"] not in outputs:
                v.append(Violation("L3 cached", f"{key}: read {r['value']!r}, the output of no run", [r]))
    return v


# --- 4-7. a register per key: reads never go back past an acknowledged write ---------------

def _covers(w, r):
    """Does write w (set, delete, get-or-run store, or a namespace clear) act on r's key?"""
    if w["op"] == "clear":
        return r.get("ns") == w.get("ns")
    return w["key"] == r["key"] and w.get("ns") == r.get("ns")


def check_register(ops, stale_ns=0):
    """For keys written by `set` (values unique per write), erased by `delete` or a
    namespace `clear`, stored by `get-or-run` (its runs recorded), and read by `get` or by a
    get-or-run that did not run its command:
    R1  a read answers a value some write wrote (set, or a get-or-run's run), invoked before
        the read completed, and not by a write that failed; a chunked value is whole (the
        reader checked length and checksum: else it is recorded as "TORN:...");
    R2  a read does not answer the value of write W if another write W2 acknowledged before
        the read's horizon (set of another value, delete, clear of its namespace) was invoked
        after W completed: W2 superseded W before the read began;
    R3  a read misses only if every set acknowledged before its horizon may have been
        erased after it: some delete or clear (acknowledged or unknown) that completed after
        the set was invoked and was invoked before the read completed;
    R4  a read does not answer the value of a get-or-run whose command started (so its read
        of the key, a miss, came before) before a set that was invoked after that start and
        acknowledged before the read's horizon: get_or_set's store never overwrites a newer
        acknowledged value, with or without --lease (without one, the store is conditional
        on the item read just before the command).
    """
    v = []
    runs = {o["arg"]: o for o in ops if o["op"] == "run"}  # get-or-run id -> its run
    writes = []  # (record, value) of every possible source of a value
    for o in ops:
        if o["op"] == "set":
            writes.append(o)
    store_of = {}
    for o in ops:
        if o["op"] == "get-or-run" and o["id"] in runs:
            run = runs[o["id"]]
            # The store happens after the command ran, within the get-or-run operation.
            w = dict(o, op="store", arg=run["value"], invoke=run["invoke"], id=o["id"] + "s")
            store_of[run["value"]] = (w, o, run)
            writes.append(w)
    source = {}
    for w in writes:
        source.setdefault(w["arg"], w)
    acked = [o for o in ops if o["op"] in ("set", "delete", "clear") and o["type"] == "ok"]
    erasers = [o for o in ops if o["op"] in ("delete", "clear") and o["type"] in ("ok", "info")]
    reads = [o for o in ops if o["type"] == "ok" and
             (o["op"] == "get" or (o["op"] == "get-or-run" and o["id"] not in runs))]
    for r in reads:
        val = r["value"]
        horizon = r["invoke"] - stale_ns
        if isinstance(val, str) and val.startswith("TORN"):
            v.append(Violation("R1 whole values", f"read of {r['key']} answered a torn or mixed value: {val}", [r]))
            continue
        if val is None:
            later = [w for w in acked if w["op"] == "set" and _covers(w, r) and w["complete"] <= horizon]
            for w in sorted(later, key=lambda w: -w["complete"]):
                if not any(_covers(d, r) and d["complete"] > w["invoke"] and d["invoke"] < r["complete"]
                           for d in erasers):
                    v.append(Violation("R3 no lost write",
                                       f"read of {r['key']} misses after a set acknowledged before it", [w, r]))
                    break
            continue
        w = source.get(val)
        if w is None or not _covers(w, r) or w["invoke"] > r["complete"]:
            v.append(Violation("R1 a written value", f"read of {r['key']} answered {val!r}, which no write wrote",
                               [r] + ([w] if w else [])))
            continue
        if w["type"] == "fail":
            v.append(Violation("R1 a written value",
                               f"read of {r['key']} answered the value of a write that failed", [w, r],
                               note="the write was applied although the CLI reported a definite error: an "
                                    "earlier attempt's answer was lost, a later attempt failed"))
            continue
        for w2 in acked:
            if w2 is w or not _covers(w2, r) or w2.get("arg") == val and w2["op"] == "set":
                continue
            if w2["invoke"] > w["complete"] and w2["complete"] <= horizon:
                what = {"set": "overwritten", "delete": "deleted", "clear": "cleared"}[w2["op"]]
                v.append(Violation("R2 no stale value",
                                   f"read of {r['key']} answered a value {what} before the read began "
                                   f"({(r['invoke'] - w2['complete']) / MS:.0f} ms before)", [w, w2, r]))
                break
        else:
            if w["op"] == "store":
                _, caller, run = store_of[val]
                for s in acked:
                    if s["op"] == "set" and _covers(s, r) and s["invoke"] > run["invoke"] and s["complete"] <= horizon:
                        v.append(Violation("R4 get-or-run never overwrites",
                                           f"read of {r['key']} answered get-or-run {caller['id']}'s output though a "
                                           "set invoked after its miss was acknowledged before the read",
                                           [run, caller, s, r]))
                        break
    return v
