# pinvault_cli_args: the option parser shared by pinvault, pinvault-admin and its tenant commands.
add_library(pinvault_cli_args STATIC ${CMAKE_CURRENT_LIST_DIR}/cli_args.cc)
target_link_libraries(pinvault_cli_args PRIVATE pinvault_warnings)
target_include_directories(pinvault_cli_args PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(pinvault_cli_args PUBLIC pinvault_base)
