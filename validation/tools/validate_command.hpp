#pragma once
// The whole sigprop-validate command line as a function, so that the sigprop-validate
// program and `sigprop validate` run the same code (sigprop_validate.cpp).

namespace sigprop::validation {

/// Parses argv as sigprop-validate does and runs it; returns the exit status (2 for bad
/// input, with one line on stderr). `program` is the name that --help's usage line and the
/// error messages give (`sigprop validate` when the sigprop tool runs it).
int validate_command(int argc, char** argv, const char* program = "sigprop-validate");

}  // namespace sigprop::validation
