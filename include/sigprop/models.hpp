#pragma once
// Whole models: the spec, predict() and its trajectory, schemes and the init solver,
// and closed-form depth asymptotics.
#include "sigprop/models/spec.hpp"
#include "sigprop/models/trajectory.hpp"
#include "sigprop/models/predict.hpp"
#include "sigprop/models/schemes.hpp"
#include "sigprop/models/asymptotics.hpp"
#include "sigprop/models/resolved.hpp"
