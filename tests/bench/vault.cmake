# bench_vault: realm throughput (Recover2, full recovery) next to the floor measured in the
# same run, and --million for start-up time and RSS with 1,000,000 records. The smoke test
# runs each figure for a fraction of a second and does not enforce the ratio. The floor is
# pinvault-bench's (api/bench/bench_floor.h, library pinvault_bench_floor).
target_link_libraries(bench_vault PRIVATE pinvault_bench_floor pinvault_vault pinvault_pkcs11
                      pinvault_backup_store pinvault_testing)
add_test(NAME bench_vault_smoke COMMAND bench_vault --smoke)
set_tests_properties(bench_vault_smoke PROPERTIES TIMEOUT 120)

# The long crash test (200 SIGKILLs; the default CI run of backup_store_crash_test does 25).
option(PINVAULT_LONG_TESTS "Register the long-running test variants (ctest -L long)" OFF)
if(PINVAULT_LONG_TESTS)
  add_test(NAME backup_store_crash_test_200_kills
           COMMAND backup_store_crash_test --gtest_filter=*CrashTest.*)
  set_tests_properties(backup_store_crash_test_200_kills PROPERTIES
                       ENVIRONMENT PINVAULT_CRASH_KILLS=200 LABELS long TIMEOUT 900)
endif()
