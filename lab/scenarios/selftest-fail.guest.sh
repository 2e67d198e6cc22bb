# Guest half of selftest-fail: reports a figure, then a failing check.
lab_result guest.selftest reached
[ -b /dev/xvda ] && lab_fail "this guest was given no disk, yet has /dev/xvda"
lab_fail "deliberate failure"
