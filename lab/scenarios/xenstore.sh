# Scenario: the XenStore client's conformance suite (tests/XenStore.Tests ConformanceTests, run
# by the payload's xs-conformance) against the REAL xenstored in dom0, over its Unix socket, as
# dom0. Figures: one xs.test.* line per test and xs.conformance passed=N failed=N skipped=N.
runner=$LAB_PAYLOAD/xs-conformance/xs-conformance
[ -x "$runner" ] || lab_fail "no $runner: run lab/run --payload \"\$(lab/host/payload.sh)\" xenstore"
lab_result dom0.xenstored "$(readlink "/proc/$(cat /run/xenstored.pid)/exe")"
t0=$SECONDS
XENSTORE_CONFORMANCE_SOCKET=/run/xenstored/socket timeout 900 "$runner" 2> /run/lab/xs-conformance.err
rc=$?
lab_result dom0.xs_conformance_s $((SECONDS - t0)) exit="$rc"
[ "$rc" -eq 0 ] || { head -c 6000 /run/lab/xs-conformance.err | sed 's/^/LAB-DIAG: xs-conformance: /'; lab_fail "conformance suite failed (exit $rc)"; }
