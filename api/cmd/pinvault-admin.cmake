# pinvault-admin: the operator tool (hsm init/audit/status; tenant and token commands).
add_executable(pinvault-admin ${CMAKE_CURRENT_LIST_DIR}/pinvault_admin.cc
  ${CMAKE_CURRENT_LIST_DIR}/admin_hsm.cc)
target_link_libraries(pinvault-admin PRIVATE pinvault_warnings)
target_include_directories(pinvault-admin PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(pinvault-admin PRIVATE pinvault_pkcs11 pinvault_admin_tenant pinvault_cli_args
  nlohmann_json::nlohmann_json)

# tests/api/cmd/admin_cli_test.cc runs the built binary (PINVAULT_BINARY_DIR/api/pinvault-admin);
# its target is declared later (in tests/), so add the build order once every directory has been
# processed.
function(pinvault_admin_cli_test_dependencies)
  if(TARGET api_cmd_admin_cli_test)
    add_dependencies(api_cmd_admin_cli_test pinvault-admin)
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL pinvault_admin_cli_test_dependencies)
