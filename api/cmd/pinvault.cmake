# pinvault: the client CLI (register / recover / delete over HTTP) and `pinvault demo`, which
# embeds a whole realm (SoftHSM2 token, SQLite store, core and HTTP server).
add_executable(pinvault ${CMAKE_CURRENT_LIST_DIR}/pinvault.cc ${CMAKE_CURRENT_LIST_DIR}/demo.cc)
target_link_libraries(pinvault PRIVATE pinvault_warnings)
target_include_directories(pinvault PRIVATE ${PROJECT_SOURCE_DIR})
target_link_libraries(pinvault PRIVATE pinvault_cli_args pinvault_api_client pinvault_api_server pinvault_backup_client
  pinvault_backup_store pinvault_pkcs11 pinvault_vault)

# tests/api/pinvault_cli*_test.cc run the built binary (PINVAULT_BINARY_DIR/api/pinvault);
# their targets are declared later (in tests/), so add the build order once every directory
# has been processed.
function(pinvault_cli_test_dependencies)
  foreach(test api_cmd_pinvault_cli_test)
    if(TARGET ${test})
      add_dependencies(${test} pinvault)
    endif()
  endforeach()
endfunction()
cmake_language(DEFER DIRECTORY ${PROJECT_SOURCE_DIR} CALL pinvault_cli_test_dependencies)
