# pinvaultd: the realm server (HSM token via PKCS#11, SQLite or PostgreSQL store, core, HTTP
# front end).
add_executable(pinvaultd ${CMAKE_CURRENT_LIST_DIR}/pinvaultd.cc)
target_link_libraries(pinvaultd PRIVATE pinvault_warnings)
target_include_directories(pinvaultd PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(pinvaultd PRIVATE pinvault_api_server pinvault_backup_store
  pinvault_backup_store_postgres pinvault_pkcs11 pinvault_vault)

# tests/api/cmd/server_pinvaultd_test.cc and server_pinvaultd_postgres_test.cc run the built
# binary (PINVAULT_BINARY_DIR/api/pinvaultd) and pinvault-admin (to create the realm keys and
# migrate the database); their targets are declared later (in tests/), so add the build order
# once every directory has been processed.
function(pinvaultd_test_dependencies)
  foreach(test api_cmd_server_pinvaultd_test api_cmd_server_pinvaultd_postgres_test)
    if(TARGET ${test})
      add_dependencies(${test} pinvaultd)
      if(TARGET pinvault-admin)
        add_dependencies(${test} pinvault-admin)
      endif()
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL pinvaultd_test_dependencies)
