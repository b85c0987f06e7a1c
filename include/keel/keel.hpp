// keel/keel.hpp — the umbrella header: core types, op descriptors, the backend concept and the
// reference kernels that define every op.
#pragma once

#include "keel/backend.hpp"
#include "keel/check.hpp"
#include "keel/dtype.hpp"
#include "keel/ops.hpp"
#include "keel/quant.hpp"
#include "keel/status.hpp"
#include "keel/tensor.hpp"
#include "keel/version.hpp"
#include "keel/kernels/reference/matmul_i8.hpp"
#include "keel/kernels/reference/quantize.hpp"
#include "keel/kernels/reference/conv2d_i8.hpp"
#include "keel/kernels/reference/matmul_i4.hpp"
#include "keel/kernels/reference/attention.hpp"
#include "keel/backends/reference.hpp"
