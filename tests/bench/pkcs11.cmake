# bench_pkcs11: pinvault's PKCS#11 layer against raw PKCS#11 calls on SoftHSM2 (same run, same
# session); prints ops/s, the overhead and PASS/FAIL against the 10% floor.
target_link_libraries(bench_pkcs11 PRIVATE pinvault_pkcs11 pinvault_testing)
# Smoke run: the benchmark works end to end (its figures are not judged here; run it alone,
# e.g. `bench_pkcs11 --seconds 5 --strict`, to judge them).
add_test(NAME bench_pkcs11_smoke COMMAND bench_pkcs11 --seconds 1)
set_tests_properties(bench_pkcs11_smoke PROPERTIES TIMEOUT 60
  PASS_REGULAR_EXPRESSION "overall: (PASS|FAIL)")
