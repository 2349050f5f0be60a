# pinvault_admin_tenant: pinvault-admin's `tenant` and `token` commands (api/cmd/admin_tenant.cc)
# as a library, so the pinvault-admin binary and the tests link the same code.
# pinvault-admin links it with: target_link_libraries(pinvault-admin PRIVATE pinvault_admin_tenant)
add_library(pinvault_admin_tenant STATIC ${CMAKE_CURRENT_LIST_DIR}/admin_tenant.cc)
target_link_libraries(pinvault_admin_tenant PRIVATE pinvault_warnings)
target_link_libraries(pinvault_admin_tenant PUBLIC pinvault_api_client pinvault_api_server pinvault_cli_args)

# tests/api/cmd/tenant_admin_test.cc exercises these commands; its target is declared later (in
# tests/), so link it once every directory has been processed.
function(pinvault_link_admin_tenant_tests)
  if(TARGET api_cmd_tenant_admin_test)
    target_link_libraries(api_cmd_tenant_admin_test PRIVATE pinvault_admin_tenant)
  endif()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL pinvault_link_admin_tenant_tests)
