"""run.py --self-test: hand-made histories, good and bad, for every checker rule. Each bad
history must be caught by the rule named, each good one pass: checkers that cannot fail
prove nothing.
"""
import checkers

MS = 1_000_000
_n = [0]


def op(o, key, t0, t1, typ="ok", value=None, arg=None, worker=0, **kw):
    """One operation; times in ms."""
    _n[0] += 1
    rec = {"id": kw.pop("id", f"{worker}.{_n[0]}"), "worker": worker, "op": o, "key": key, "arg": arg,
           "invoke": int(t0 * MS), "complete": int(t1 * MS), "type": typ, "value": value,
           "rc": {"ok": 0, "fail": 4, "info": 5}[typ], "err": ""}
    rec.update(kw)
    return rec


def gor(key, t0, t1, value, caller_id, run_t0, run_t1, lease=True, typ="ok"):
    """A get-or-run that ran its command, and the command's run record."""
    g = op("get-or-run", key, t0, t1, typ, value if typ == "ok" else None, value, id=caller_id, lease=lease)
    r = op("run", key, run_t0, run_t1, "ok", value, caller_id, id="run:" + caller_id)
    return [g, r]


def cases():
    S = 1000 * MS  # the staleness window of the eventual mode
    add, incr, lease, reg = checkers.check_add, checkers.check_incr, checkers.check_lease, checkers.check_register
    L = 10_000 * MS
    yield "add: one winner, read its value", add, [
        op("add", "k", 0, 10, "ok", True, "a"), op("add", "k", 0, 12, "ok", False, "b"),
        op("add", "k", 1, 9, "info", None, "c"), op("get", "k", 20, 25, "ok", "a")], None
    yield "add: two winners", add, [
        op("add", "k", 0, 10, "ok", True, "a"), op("add", "k", 0, 12, "ok", True, "b"),
        op("get", "k", 20, 25, "ok", "a")], "A1"
    yield "add: own write reported 'already live' (answer lost, retried)", add, [
        op("add", "k", 0, 10, "ok", False, "a"), op("add", "k", 0, 12, "ok", False, "b"),
        op("get", "k", 20, 25, "ok", "a")], "A3"
    yield "add: read answers a loser's value", add, [
        op("add", "k", 0, 10, "ok", True, "a"), op("add", "k", 0, 12, "ok", False, "b"),
        op("get", "k", 20, 25, "ok", "b")], "A3"
    yield "add: a loser saw it live, the read misses", add, [
        op("add", "k", 0, 10, "info", None, "a"), op("add", "k", 0, 12, "ok", False, "b"),
        op("get", "k", 20, 25, "ok", None)], "A3"
    yield "add: everyone lost, nobody won, no read", add, [
        op("add", "k", 0, 10, "ok", False, "a"), op("add", "k", 0, 12, "ok", False, "b")], "A2"
    yield "add: no winner, read the unknown-outcome add's value", add, [
        op("add", "k", 0, 10, "info", None, "a"), op("add", "k", 0, 12, "ok", False, "b"),
        op("get", "k", 20, 25, "ok", "a")], None
    yield "add: eventual read misses within the window", lambda h: add(h, S), [
        op("add", "k", 0, 10, "ok", True, "a"), op("get", "k", 500, 505, "ok", None)], None
    yield "add: eventual read misses beyond the window", lambda h: add(h, S), [
        op("add", "k", 0, 10, "ok", True, "a"), op("get", "k", 1500, 1505, "ok", None)], "A3"

    yield "incr: sequential, final read", incr, [
        op("incr", "c", 0, 10, "ok", 5, 5), op("incr", "c", 20, 30, "ok", 12, 7),
        op("incr", "c", 20, 30, "info", None, 3), op("get", "c", 40, 45, "ok", "15")], None
    yield "incr: a value handed out twice", incr, [
        op("incr", "c", 0, 10, "ok", 5, 5), op("incr", "c", 0, 10, "ok", 5, 5)], "I1"
    yield "incr: a value missing an earlier acknowledged delta", incr, [
        op("incr", "c", 0, 10, "ok", 5, 5), op("incr", "c", 20, 30, "ok", 7, 7)], "I2"
    yield "incr: a delta applied twice (gap in the returned values)", incr, [
        op("incr", "c", 0, 10, "ok", 5, 5), op("incr", "c", 20, 30, "ok", 19, 7)], "I3"
    yield "incr: a gap filled by an incr reported as failed (it was applied)", incr, [
        op("incr", "c", 0, 10, "ok", 5, 5), op("incr", "c", 11, 15, "fail", None, 9),
        op("incr", "c", 20, 30, "ok", 21, 7)], "I3"
    yield "add: read answers the value of an add that failed", add, [
        op("add", "k", 0, 10, "fail", None, "a"), op("add", "k", 0, 12, "ok", False, "b"),
        op("get", "k", 20, 25, "ok", "a")], "A3"
    yield "incr: the gap is an unknown-outcome delta", incr, [
        op("incr", "c", 0, 10, "ok", 5, 5), op("incr", "c", 12, 15, "info", None, 7),
        op("incr", "c", 20, 30, "ok", 19, 7)], None
    yield "incr: final value above every delta", incr, [
        op("incr", "c", 0, 10, "ok", 5, 5), op("get", "c", 40, 45, "ok", "10")], "I4"
    yield "incr: final value below the acknowledged sum", incr, [
        op("incr", "c", 0, 10, "ok", 5, 5), op("incr", "c", 20, 30, "ok", 12, 7), op("get", "c", 40, 45, "ok", "5")], "I4"
    yield "incr: eventual final read stale within the window", lambda h: incr(h, S), [
        op("incr", "c", 0, 10, "ok", 5, 5), op("incr", "c", 20, 30, "ok", 12, 7), op("get", "c", 40, 45, "ok", "5")], None

    yield "lease: one run, everyone prints it", lambda h: lease(h, L), [
        *gor("g", 0, 400, "v1", "1.1", 20, 320),
        op("get-or-run", "g", 0, 450, "ok", "v1", "v2", id="2.1"), op("get", "g", 500, 505, "ok", "v1")], None
    yield "lease: a second run while the first holder's lease holds", lambda h: lease(h, L), [
        *gor("g", 0, 400, "v1", "1.1", 20, 320), *gor("g", 0, 420, "v2", "2.1", 50, 350)], "L1"
    yield "lease: a second run after the first holder failed", lambda h: lease(h, L), [
        *gor("g", 0, 400, "v1", "1.1", 20, 320, typ="info"), *gor("g", 0, 900, "v2", "2.1", 450, 750)], None
    yield "lease: a printed value no run made", lambda h: lease(h, L), [
        *gor("g", 0, 400, "v1", "1.1", 20, 320), op("get-or-run", "g", 0, 450, "ok", "v9", "v2", id="2.1")], "L2"
    yield "lease: nothing cached after a printed value", lambda h: lease(h, L), [
        *gor("g", 0, 400, "v1", "1.1", 20, 320), op("get", "g", 500, 505, "ok", None)], "L3"

    yield "register: set, read, overwrite, read, delete, miss", reg, [
        op("set", "k", 0, 10, "ok", True, "a"), op("get", "k", 15, 20, "ok", "a"),
        op("set", "k", 30, 40, "ok", True, "b"), op("get", "k", 35, 45, "ok", "a"),  # concurrent: either
        op("get", "k", 50, 55, "ok", "b"), op("delete", "k", 60, 70, "ok", True),
        op("get", "k", 80, 85, "ok", None)], None
    yield "register: a torn big value", reg, [
        op("set", "k", 0, 10, "ok", True, "W1:S1"), op("get", "k", 15, 20, "ok", "TORN: W1:S1 checksum mismatch")], "R1"
    yield "register: a value nobody wrote", reg, [
        op("set", "k", 0, 10, "ok", True, "a"), op("get", "k", 15, 20, "ok", "zz")], "R1"
    yield "register: the value of a failed write", reg, [
        op("set", "k", 0, 10, "fail", None, "a"), op("get", "k", 15, 20, "ok", "a")], "R1"
    yield "register: a value overwritten before the read began", reg, [
        op("set", "k", 0, 10, "ok", True, "a"), op("set", "k", 20, 30, "ok", True, "b"),
        op("get", "k", 40, 45, "ok", "a")], "R2"
    yield "register: an erased value read after the delete returned", reg, [
        op("set", "k", 0, 10, "ok", True, "a"), op("delete", "k", 20, 30, "ok", True),
        op("get", "k", 40, 45, "ok", "a")], "R2"
    yield "register: erased value, eventual read within the window", lambda h: reg(h, S), [
        op("set", "k", 0, 10, "ok", True, "a"), op("delete", "k", 20, 30, "ok", True),
        op("get", "k", 40, 45, "ok", "a")], None
    yield "register: erased value, eventual read beyond the window", lambda h: reg(h, S), [
        op("set", "k", 0, 10, "ok", True, "a"), op("delete", "k", 20, 30, "ok", True),
        op("get", "k", 1100, 1105, "ok", "a")], "R2"
    yield "register: a value written before a namespace clear", reg, [
        op("set", "k", 0, 10, "ok", True, "a", ns="N"), op("clear", "*", 20, 30, "ok", True, ns="N"),
        op("get", "k", 40, 45, "ok", "a", ns="N")], "R2"
    yield "register: a set concurrent with the clear may survive", reg, [
        op("set", "k", 0, 25, "ok", True, "a", ns="N"), op("clear", "*", 20, 30, "ok", True, ns="N"),
        op("get", "k", 40, 45, "ok", "a", ns="N")], None
    yield "register: a lost write (miss, no delete)", reg, [
        op("set", "k", 0, 10, "ok", True, "a"), op("get", "k", 40, 45, "ok", None)], "R3"
    yield "register: a miss after a delete of unknown outcome", reg, [
        op("set", "k", 0, 10, "ok", True, "a"), op("delete", "k", 20, 30, "info", None),
        op("get", "k", 40, 45, "ok", None)], None
    yield "register: get-or-run (lease) overwrote a newer set", reg, [
        *gor("k", 0, 50, "g", "1.1", 10, 40), op("set", "k", 20, 30, "ok", True, "s"),
        op("get", "k", 60, 65, "ok", "g")], "R4"
    yield "register: get-or-run stored before the set began", reg, [
        *gor("k", 0, 50, "g", "1.1", 10, 40), op("set", "k", 60, 70, "ok", True, "s"),
        op("get", "k", 65, 75, "ok", "g")], None
    yield "register: get-or-run without a lease overwrote a newer set", reg, [
        *gor("k", 0, 50, "g", "1.1", 10, 40, lease=False), op("set", "k", 20, 30, "ok", True, "s"),
        op("get", "k", 60, 65, "ok", "g")], "R4"


def main():
    bad = 0
    n = 0
    for name, checker, history, rule in cases():
        n += 1
        found = checker(history)
        rules = [getattr(v, "rule", str(v)) for v in found]
        ok = (not found) if rule is None else any(r.startswith(rule) for r in rules)
        if not ok:
            bad += 1
            want = "no violation" if rule is None else f"a {rule} violation"
            print(f"SELF-TEST FAIL: {name}: wanted {want}, got {rules}")
            for v in found:
                if hasattr(v, "render"):
                    print(v.render("self-test"))
    print(f"self-test: {n - bad} of {n} hand-made histories judged as expected")
    return 1 if bad else 0
