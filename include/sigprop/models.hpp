#pragma once
// Whole models: the spec, predict() and its trajectory, schemes and the init solver,
// closed-form depth asymptotics, and the position-resolved forward and backward.
#include "sigprop/models/spec.hpp"
#include "sigprop/models/trajectory.hpp"
#include "sigprop/models/predict.hpp"
#include "sigprop/models/schemes.hpp"
#include "sigprop/models/asymptotics.hpp"
#include "sigprop/models/resolved.hpp"
#include "sigprop/models/resolved_backward.hpp"
