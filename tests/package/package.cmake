# Steps of the package tests, run by CTest as `cmake [-D...] -P package.cmake [-- options]`.
#
#   -DSTEP=install   -DBUILD=<sigprop build tree> -DPREFIX=<dir>
#       installs the build tree into a fresh <dir> and checks the key files are there.
#   -DSTEP=consumer  -DSOURCE=<consumer project> -DBINARY=<dir> -DGENERATOR=... [-DMAKE_PROGRAM=...]
#                    -DCXX=<compiler> [-DBUILD_TYPE=...] [-DEXPECT_FAILURE=<regex>] [-- <options>]
#       configures the consumer in a fresh <dir> with the options after `--`, builds it and
#       runs its `consumer` program. With EXPECT_FAILURE the configure step must fail with
#       a message matching <regex>.
cmake_minimum_required(VERSION 3.20)

function(run what)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "${what} failed (${rc}): ${ARGN}")
    endif()
endfunction()

if(STEP STREQUAL "install")
    file(REMOVE_RECURSE "${PREFIX}")
    run("install" "${CMAKE_COMMAND}" --install "${BUILD}" --prefix "${PREFIX}")
    foreach(f IN ITEMS include/sigprop/components/linear.hpp
                       share/cmake/sigprop/sigpropConfig.cmake
                       share/cmake/sigprop/sigpropConfigVersion.cmake
                       share/cmake/sigprop/sigpropTargets.cmake)
        if(NOT EXISTS "${PREFIX}/${f}")
            message(FATAL_ERROR "the install tree lacks ${f}")
        endif()
    endforeach()
    return()
endif()

if(NOT STEP STREQUAL "consumer")
    message(FATAL_ERROR "unknown STEP '${STEP}'")
endif()

# Everything after `--` is passed to the consumer's configure step.
set(options "")
set(seen_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
    if(seen_separator)
        list(APPEND options "${CMAKE_ARGV${i}}")
    elseif("${CMAKE_ARGV${i}}" STREQUAL "--")
        set(seen_separator TRUE)
    endif()
endforeach()

set(configure "${CMAKE_COMMAND}" -S "${SOURCE}" -B "${BINARY}" -G "${GENERATOR}"
    "-DCMAKE_CXX_COMPILER=${CXX}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
    list(APPEND configure "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()

file(REMOVE_RECURSE "${BINARY}")
if(EXPECT_FAILURE)
    execute_process(COMMAND ${configure} ${options} RESULT_VARIABLE rc
                    OUTPUT_VARIABLE out ERROR_VARIABLE out)
    message("${out}")
    if(rc EQUAL 0)
        message(FATAL_ERROR "configuring ${SOURCE} succeeded but was expected to fail")
    endif()
    if(NOT out MATCHES "${EXPECT_FAILURE}")
        message(FATAL_ERROR "configuring failed, but not with a message matching '${EXPECT_FAILURE}'")
    endif()
    message(STATUS "configuring failed, as expected")
    return()
endif()
run("configure" ${configure} ${options})
run("build" "${CMAKE_COMMAND}" --build "${BINARY}")
# Single-config generators put the program in BINARY, multi-config ones in a subfolder.
set(exe "${BINARY}/consumer${CMAKE_EXECUTABLE_SUFFIX}")
if(NOT EXISTS "${exe}")
    file(GLOB exe "${BINARY}/*/consumer${CMAKE_EXECUTABLE_SUFFIX}")
endif()
run("the consumer program" "${exe}")
