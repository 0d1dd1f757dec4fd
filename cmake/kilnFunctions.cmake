# kilnFunctions.cmake: kiln_add_model, included by kilnConfig.cmake (find_package(kiln)).
#
#   kiln_add_model(TARGET MODEL [WEIGHTS FILE] [OPTIONS ARG ...] [DEPENDS FILE ...])
#
# At build time, runs `kiln build MODEL --emit lib` into ${CMAKE_CURRENT_BINARY_DIR}/kiln/TARGET/:
# libTARGET.a (the model and the runtime in one archive) and the generated header NAME.h, NAME being
# the model's name (`model NAME` in a .kiln or .kir file; for another format, such as ONNX, what
# `kiln check MODEL` says at configure time), made a C identifier as kiln makes it. Both files are
# OUTPUTs of the build step, so a source that includes the header is compiled again when it changes,
# and a deleted header is made again. The model file is a configure dependency: a change of the
# model's name reconfigures. TARGET is an imported static library whose include
# directories hold that header and <kiln/kiln_rt.h>; link it with target_link_libraries. The model is
# compiled again when MODEL, its weights, any DEPENDS file or the kiln program changes. WEIGHTS is
# passed as --weights; without it, the weights file a .kiln model names (`weights "FILE"`, relative
# to the model) is the one tracked. OPTIONS go to kiln build as they are (-D NAME=VALUE, -O3,
# --quant w8, --prune-tokens ..., --kv-cache ..., --weights-mode embed|external).
include_guard(GLOBAL)

function(kiln_add_model target model)
  cmake_parse_arguments(PARSE_ARGV 2 KILN "" "WEIGHTS" "OPTIONS;DEPENDS")
  if(KILN_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "kiln_add_model(${target}): unknown arguments ${KILN_UNPARSED_ARGUMENTS}; "
                        "expected [WEIGHTS FILE] [OPTIONS ARG ...] [DEPENDS FILE ...]")
  endif()
  get_filename_component(model "${model}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${model}")
    message(FATAL_ERROR "kiln_add_model(${target}): the model file ${model} does not exist")
  endif()
  set(deps "${model}")
  set(weights_args)
  if(KILN_WEIGHTS)
    get_filename_component(weights "${KILN_WEIGHTS}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND deps "${weights}")
    set(weights_args --weights "${weights}")
  elseif(model MATCHES "\\.kiln$")
    file(STRINGS "${model}" line REGEX "^[ \t]*weights[ \t]+\"[^\"]+\"" LIMIT_COUNT 1)
    if(line MATCHES "\"([^\"]+)\"")
      get_filename_component(model_dir "${model}" DIRECTORY)
      get_filename_component(weights "${CMAKE_MATCH_1}" ABSOLUTE BASE_DIR "${model_dir}")
      list(APPEND deps "${weights}")
    endif()
  endif()
  foreach(dep ${KILN_DEPENDS})
    get_filename_component(dep "${dep}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
    list(APPEND deps "${dep}")
  endforeach()

  # the header kiln build writes: NAME.h, NAME made a C identifier as codegen's cg_ident does
  # (every character but letters and digits becomes _, and _ goes before a leading digit)
  set(name "")
  if(model MATCHES "\\.(kiln|kir)$")
    file(STRINGS "${model}" line REGEX "^[ \t]*model[ \t]+[^ \t#]+" LIMIT_COUNT 1)
    if(line MATCHES "^[ \t]*model[ \t]+([^ \t#]+)")
      set(name "${CMAKE_MATCH_1}")
    endif()
  else()
    set(check_args)
    set(take 0)
    foreach(opt ${KILN_OPTIONS}) # the options that change what the model is: -D and --bound
      if(take)
        list(APPEND check_args "${opt}")
        set(take 0)
      elseif(opt STREQUAL "-D" OR opt STREQUAL "--bound")
        list(APPEND check_args "${opt}")
        set(take 1)
      elseif(opt MATCHES "^-D.")
        list(APPEND check_args "${opt}")
      endif()
    endforeach()
    execute_process(COMMAND "${KILN_EXECUTABLE}" check "${model}" ${weights_args} ${check_args}
                    OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0 OR NOT out MATCHES "^model ([^ \n]+)")
      message(FATAL_ERROR "kiln_add_model(${target}): kiln check ${model} failed, so the header's name is "
                          "unknown:\n${err}")
    endif()
    set(name "${CMAKE_MATCH_1}")
  endif()
  if(name STREQUAL "")
    set(name model)
  endif()
  string(REGEX REPLACE "[^A-Za-z0-9]" "_" name "${name}")
  if(name MATCHES "^[0-9]")
    set(name "_${name}")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${model}")

  set(dir "${CMAKE_CURRENT_BINARY_DIR}/kiln/${target}")
  set(lib "${dir}/lib${target}.a")
  file(MAKE_DIRECTORY "${dir}") # an imported target's include directory must exist when configured
  add_custom_command(OUTPUT "${lib}" "${dir}/${name}.h"
                     COMMAND kiln::kiln build "${model}" --emit lib -o "${lib}" ${weights_args} ${KILN_OPTIONS}
                     DEPENDS ${deps} "$<TARGET_FILE:kiln::kiln>"
                     COMMENT "kiln: compiling ${model} into ${lib}" VERBATIM)
  add_custom_target(${target}_kiln DEPENDS "${lib}" "${dir}/${name}.h")
  add_library(${target} STATIC IMPORTED GLOBAL)
  set_target_properties(${target} PROPERTIES
    IMPORTED_LOCATION "${lib}"
    INTERFACE_INCLUDE_DIRECTORIES "${dir};${KILN_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "Threads::Threads;m"
    INTERFACE_LINK_OPTIONS "${KILN_RUNTIME_LINK_OPTIONS}")
  add_dependencies(${target} ${target}_kiln)
endfunction()
