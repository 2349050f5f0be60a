# Smoke run of pinvault-bench (api/bench/pinvault-bench.cmake) so that the load generator cannot
# rot: a realm embedded in the benchmark process (fresh SoftHSM2 token, SQLite, the HTTP server
# on 127.0.0.1) gets a few seconds of full recover and register flows, closed and open loop,
# with the floor measured alongside. The test passes only if flows completed and no request or
# check failed (pinvault-bench exits 1 otherwise); the figures themselves are not judged here.
if(TARGET pinvault-bench)
  add_test(NAME bench_realm_load_smoke
           COMMAND pinvault-bench --embedded 1 --smoke --seconds 1 --warmup 0.3
                   --flow recover,register --open-fractions 0.5)
  set_tests_properties(bench_realm_load_smoke PROPERTIES TIMEOUT 120)
endif()

# The same against separate pinvaultd processes (the path deploy/BENCHMARKS.md's figures take):
# three realms, each with its own SoftHSM2 token and SQLite store, threshold 2 of 3, started by
# deploy/bench-realms.sh on free ports of 127.0.0.1.
if(TARGET pinvault-bench AND TARGET pinvaultd AND TARGET pinvault-admin)
  add_test(NAME bench_realm_load_pinvaultd_smoke
           COMMAND bash ${PROJECT_SOURCE_DIR}/deploy/bench-realms.sh --build ${PROJECT_BINARY_DIR}
                   --realms 3 --base-port auto
                   -- --smoke --seconds 1 --warmup 0.3 --floor-seconds 0 --flow recover,register)
  set_tests_properties(bench_realm_load_pinvaultd_smoke PROPERTIES TIMEOUT 180)
endif()
