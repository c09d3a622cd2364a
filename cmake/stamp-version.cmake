# Run at build time (target pathens_version): writes OUT from IN with the checkout's current commit,
# so a binary rebuilt after new commits does not carry the commit of its first configure.
# configure_file rewrites OUT only when its text changes: a build without new commits recompiles nothing.
#   cmake -DIN=... -DOUT=... -DSRC_DIR=... -DGIT_EXECUTABLE=... -DPROJECT_VERSION=... -P stamp-version.cmake
set(PATHENS_GIT_COMMIT "unknown")
if(GIT_EXECUTABLE)
  execute_process(COMMAND "${GIT_EXECUTABLE}" rev-parse HEAD WORKING_DIRECTORY "${SRC_DIR}"
                  OUTPUT_VARIABLE _commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
  if(_rc EQUAL 0 AND _commit)
    set(PATHENS_GIT_COMMIT "${_commit}")
  endif()
endif()
configure_file("${IN}" "${OUT}" @ONLY)
