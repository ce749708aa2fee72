// Op registrations: TFLite builtin code -> secure kernel built from the node.
#pragma once
#include <memory>
#include <string>

#include "delegate/tflite_abi.h"
#include "kernels/kernel.h"

namespace tflite_mpc {

// View of one TFLite node while the plan is built.
struct NodeView {
  TfLiteContext* ctx;
  TfLiteNode* node;
  TfLiteRegistration* reg;
  int index;
  bool fc_single_rounding = true;  // option fc_rounding
  int num_inputs() const { return node->inputs->size; }
  int input_index(int k) const { return node->inputs->data[k]; }
  int output_index(int k) const { return node->outputs->data[k]; }
  TensorInfo input(int k) const;   // throws if absent
  TensorInfo output(int k) const;
  bool has_input(int k) const { return k < num_inputs() && node->inputs->data[k] >= 0; }
};

TensorInfo tensor_info(TfLiteContext* ctx, int index);
const char* builtin_name(int code);
// nullptr when the op has no secure kernel.
std::unique_ptr<Kernel> build_kernel(const NodeView& n);
bool has_secure_kernel(int code);
// The public description of a node's op: code, version and builtin parameters
// (for the graph hash parties compare before a distributed session; tensors and
// wiring are added by the delegate).
std::string public_signature(const NodeView& n);

}  // namespace tflite_mpc
