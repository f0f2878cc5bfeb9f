#pragma once
// The combinators: serial, residual, repeat (each is a component itself).
#include "sigprop/compose/repeat.hpp"
#include "sigprop/compose/residual.hpp"
#include "sigprop/compose/serial.hpp"
