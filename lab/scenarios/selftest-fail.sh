# Scenario that must FAIL: proves the lab's failure path end to end (a guest's failing check
# travels guest console -> dom0 -> serial -> lab/run, which must exit 1 with LAB-VERDICT: FAIL).
# A lab whose verdict could not say FAIL would prove nothing. Expected: `lab/run selftest-fail`
# exits 1.
name=selftest
lab_create_guest "$(lab_guest_cfg "$name" selftest-fail "" "")"
lab_wait_console "$name" 'LAB-GUEST-DONE' 180
lab_guest_relay "$name"
[ "$(lab_guest_verdict "$name")" = PASS ] || lab_fail "guest verdict: $(lab_guest_verdict "$name") (expected here)"
