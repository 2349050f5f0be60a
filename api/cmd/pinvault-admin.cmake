# pinvault-admin: the operator tool (hsm init/audit/status; tenant and token commands; store
# migrate/status).
add_executable(pinvault-admin ${CMAKE_CURRENT_LIST_DIR}/pinvault_admin.cc
  ${CMAKE_CURRENT_LIST_DIR}/admin_hsm.cc ${CMAKE_CURRENT_LIST_DIR}/admin_store.cc)
target_link_libraries(pinvault-admin PRIVATE pinvault_warnings)
target_include_directories(pinvault-admin PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(pinvault-admin PRIVATE pinvault_pkcs11 pinvault_admin_tenant pinvault_cli_args
  pinvault_backup_store pinvault_backup_store_postgres nlohmann_json::nlohmann_json)

# tests/api/cmd/admin_cli_test.cc and admin_store_test.cc run the built binary
# (PINVAULT_BINARY_DIR/api/pinvault-admin); their targets are declared later (in tests/), so add
# the build order once every directory has been processed. admin_store_test also runs a realm
# in process on the PostgreSQL store.
function(pinvault_admin_cli_test_dependencies)
  if(TARGET api_cmd_admin_cli_test)
    add_dependencies(api_cmd_admin_cli_test pinvault-admin)
  endif()
  if(TARGET api_cmd_admin_store_test)
    add_dependencies(api_cmd_admin_store_test pinvault-admin)
    target_link_libraries(api_cmd_admin_store_test PRIVATE pinvault_backup_store_postgres)
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL pinvault_admin_cli_test_dependencies)
