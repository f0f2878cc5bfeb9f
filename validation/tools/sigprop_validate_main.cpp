// sigprop-validate: the validator's own program; the same command is `sigprop validate`.
#include "validate_command.hpp"

int main(int argc, char** argv) { return sigprop::validation::validate_command(argc, argv); }
