# Builds and runs one consumer project (see CMakeLists.txt beside this file). Script mode.
cmake_minimum_required(VERSION 3.16)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

set(consumer_src ${CMAKE_CURRENT_LIST_DIR}/${MODE})
# Debug without -g: these check that it builds, and -O0 without debug information compiles fastest.
set(common_args -G ${GENERATOR} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O0")

if(MODE STREQUAL "installed")
  set(prefix ${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} -S ${RCPU_SOURCE_DIR} -B ${WORK_DIR}/rcpu-build ${common_args}
      -DRCPU_BUILD_TESTS=OFF -DRCPU_BUILD_EXAMPLES=OFF -DCMAKE_INSTALL_PREFIX=${prefix})
  run(${CMAKE_COMMAND} --install ${WORK_DIR}/rcpu-build)
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build ${common_args} -DCMAKE_PREFIX_PATH=${prefix}
      -DWITH_MPI=${WITH_MPI})
elseif(MODE STREQUAL "subdirectory")
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build ${common_args} -DRCPU_DIR=${RCPU_SOURCE_DIR})
elseif(MODE STREQUAL "copy")
  file(COPY ${consumer_src}/ DESTINATION ${WORK_DIR}/src)
  file(COPY ${CMAKE_CURRENT_LIST_DIR}/consumer.cpp DESTINATION ${WORK_DIR}/src)
  file(COPY ${RCPU_SOURCE_DIR}/include/rcpu DESTINATION ${WORK_DIR}/src/third_party)
  set(consumer_src ${WORK_DIR}/src)
  run(${CMAKE_COMMAND} -S ${consumer_src} -B ${WORK_DIR}/build ${common_args})
else()
  message(FATAL_ERROR "unknown MODE ${MODE}")
endif()
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run(${WORK_DIR}/build/consumer)
message(STATUS "consumer (${MODE}) built and ran")
