# pinvault_bench_floor: the floor a realm is compared with (bench_floor.h: the work a realm
# cannot avoid, and scratch SoftHSM2 tokens) with the measurement helpers it uses
# (bench_stats.h). Both benchmarks link it: pinvault-bench below and bench_vault
# (tests/bench/vault.cmake), so they measure the floor with one implementation.
add_library(pinvault_bench_floor STATIC ${CMAKE_CURRENT_LIST_DIR}/bench_floor.cc
  ${CMAKE_CURRENT_LIST_DIR}/bench_stats.cc)
target_link_libraries(pinvault_bench_floor PRIVATE pinvault_warnings)
target_include_directories(pinvault_bench_floor PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(pinvault_bench_floor PUBLIC pinvault_pkcs11 pinvault_vault
  PRIVATE SQLite::SQLite3 PkgConfig::SODIUM OpenSSL::Crypto Boost::headers Threads::Threads)

# pinvault-bench: the realm load generator (full register and recover flows over HTTP against
# running realms, the floor of the machine measured in the same run). Helpers bench_*.cc.
add_executable(pinvault-bench ${CMAKE_CURRENT_LIST_DIR}/pinvault_bench.cc
  ${CMAKE_CURRENT_LIST_DIR}/bench_material.cc)
target_link_libraries(pinvault-bench PRIVATE pinvault_warnings)
target_include_directories(pinvault-bench PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(pinvault-bench PRIVATE pinvault_bench_floor pinvault_api_client pinvault_api_server pinvault_api_codec
  pinvault_backup_client pinvault_backup_store pinvault_pkcs11 pinvault_vault SQLite::SQLite3
  PkgConfig::SODIUM nlohmann_json::nlohmann_json Boost::headers Threads::Threads)
