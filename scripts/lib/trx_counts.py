"""Sum the Counters of every .trx file under a directory: prints 'passed failed skipped'."""
import pathlib
import sys
import xml.etree.ElementTree as ET

NS = "{http://microsoft.com/schemas/VisualStudio/TeamTest/2010}"
passed = failed = skipped = 0
for trx in pathlib.Path(sys.argv[1]).rglob("*.trx"):
    summary = ET.parse(trx).getroot().find(f"{NS}ResultSummary")
    counters = None if summary is None else summary.find(f"{NS}Counters")
    if counters is None:
        failed += 1
        continue
    get = lambda name: int(counters.get(name, "0"))
    passed += get("passed")
    run_failed = get("failed") + get("error") + get("timeout") + get("aborted")
    # A crashed test host leaves a summary that says Failed over counters that show no failure
    # (the tests it never reached are simply missing): count the crash itself as one failure.
    if summary.get("outcome") == "Failed" and run_failed == 0:
        run_failed = 1
    failed += run_failed
    skipped += get("notExecuted")
print(passed, failed, skipped)
