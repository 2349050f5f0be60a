# bench_client: client-side cost per register and per recover (FastInsecure and
# Standard2019) against in-memory realms, next to the Argon2 call alone. The smoke test
# runs a few iterations only (figures are printed, not asserted; failures of the flows are).
target_link_libraries(bench_client PRIVATE pinvault_backup_client pinvault_testing)
add_test(NAME bench_client_smoke COMMAND bench_client --quick)
set_tests_properties(bench_client_smoke PROPERTIES TIMEOUT 120)
