# pinvault-bench: the realm load generator (full register and recover flows over HTTP against
# running realms, the floor of the machine measured in the same run). Helpers bench_*.cc.
add_executable(pinvault-bench ${CMAKE_CURRENT_LIST_DIR}/pinvault_bench.cc
  ${CMAKE_CURRENT_LIST_DIR}/bench_floor.cc ${CMAKE_CURRENT_LIST_DIR}/bench_material.cc
  ${CMAKE_CURRENT_LIST_DIR}/bench_stats.cc)
target_compile_options(pinvault-bench PRIVATE ${PINVAULT_WARNINGS})
target_include_directories(pinvault-bench PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(pinvault-bench PRIVATE pinvault_api_http pinvault_backup_client
  pinvault_backup_store pinvault_pkcs11 pinvault_vault SQLite::SQLite3 PkgConfig::SODIUM
  nlohmann_json::nlohmann_json Boost::headers Threads::Threads)
