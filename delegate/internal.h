// Declarations shared by the delegate's source files (not part of any API).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "delegate/delegate.h"

namespace tflite_mpc {

// delegate.cc
bool is_constant(TfLiteContext* ctx, int t);             // data in the model (weights, public ints)
std::string node_label(int node, int code);               // "node 7 (CONV_2D)"
std::string sha256_hex(const std::string& s);
void set_last_check(std::vector<NodeCheck> checks);       // what tflite_mpc.check reads

// plan.cc: claims and judges every node; throws ArgError listing every refused node.
std::shared_ptr<Plan> build_plan(TfLiteContext* ctx, const Options& opt, std::vector<int>* claimed);

}  // namespace tflite_mpc
