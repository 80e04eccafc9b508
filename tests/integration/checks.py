"""Check lines for the Python integration suites run by tests/integration/*.sh.

One "  ok   WHAT" or "  FAIL WHAT -- DETAIL" line per check, then finish() prints the
closing "N passed, M failed" that lib.sh's py_counts adds to the shell totals.
"""

passed = 0
failed = 0


def check(what, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("  ok   " + what, flush=True)
    else:
        failed += 1
        print("  FAIL " + what + (" -- " + str(detail) if detail else ""), flush=True)


def finish():
    """Print the summary line; returns the suite's exit status."""
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1
