# bench_protocol: cost of the protocol's cryptography next to its scalar-multiplication and
# Argon2 floors. The smoke test runs a few iterations only (figures are not asserted).
target_link_libraries(bench_protocol PRIVATE pinvault_protocol)
add_test(NAME bench_protocol_smoke COMMAND bench_protocol --quick)
set_tests_properties(bench_protocol_smoke PROPERTIES TIMEOUT 120)
